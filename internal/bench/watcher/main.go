// Command watcher owns org.kde.StatusNotifierWatcher on the session bus
// until killed, as a desktop's tray host does, for benchmarks and manual runs.
package main

import (
	"log"

	"github.com/tokentray/tokentray/internal/tstest/dbustest"
)

func main() {
	w, err := dbustest.StartWatcher()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for {
		if _, err := w.WaitItem(1 << 62); err != nil {
			return
		}
	}
}
