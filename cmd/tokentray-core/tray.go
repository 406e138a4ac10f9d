package main

import (
	"os"
	"runtime"
	"strings"
)

// windowEnv is the window process's environment: this one, told that the
// untranslated "C.UTF-8" locale of cron, systemd and SSH sessions is
// English, which is what it means. The toolkit cannot parse "C.UTF-8" and
// says so on stderr at every start; LANGUAGE is what it reads first then.
func windowEnv(env []string) []string {
	get := func(key string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == key {
				return v
			}
		}
		return ""
	}
	locale := ""
	for _, key := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if locale = get(key); locale != "" {
			break
		}
	}
	if strings.HasPrefix(locale, "C.") && get("LANGUAGE") == "" {
		return append(env, "LANGUAGE=en")
	}
	return env
}

// hasDisplay reports whether a window can be shown.
func hasDisplay() bool {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" {
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}
