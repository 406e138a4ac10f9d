package main

import (
	"os"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	kernel32                  = windows.NewLazySystemDLL("kernel32.dll")
	procGetConsoleProcessList = kernel32.NewProc("GetConsoleProcessList")
	procFreeConsole           = kernel32.NewProc("FreeConsole")
)

// leaveOwnConsole is the tray's first step on Windows. tokentray-core.exe
// is a console program (it is the command line too), so started from the
// Start menu or at login it gets a console window of its own, which would
// stay open as long as the tray runs. When this process is the only one
// on its console (no shell started it), it leaves the console, which
// closes the window, and its standard streams go to NUL: nobody reads
// them there. Started from a terminal, it keeps the terminal.
func leaveOwnConsole() {
	var pids [2]uint32
	n, _, _ := procGetConsoleProcessList.Call(uintptr(unsafe.Pointer(&pids[0])), uintptr(len(pids)))
	if n != 1 { // 0: no console at all; 2 or more: a shell's
		return
	}
	if ok, _, _ := procFreeConsole.Call(); ok == 0 {
		return
	}
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		os.Stdin, os.Stdout, os.Stderr = null, null, null
	}
}

// noConsoleWindow starts cmd without a console window: the window process
// draws its own windows, and a console program started by a process with
// no console would get one.
func noConsoleWindow(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NO_WINDOW}
}
