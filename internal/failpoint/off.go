//go:build !failpoints || !unix

// Package failpoint stops a process at a point chosen in the code, for the
// end-to-end tests only: what a holder of a shared store's lease does when
// it is paused (SIGSTOP, a VM migration) between two steps of a refresh
// cannot be hit from outside at the instant it matters. The points are
// compiled in only with the build tag failpoints, which the end-to-end
// tests' own build sets; a released tokentray has none.
package failpoint

// Pause does nothing: this build has no failpoints.
func Pause(name string) {}
