package config

// ValidName reports whether name may name a connection: letters, digits,
// '.', '_' and '-', at most 64, starting with a letter or digit. The
// connections a [[remote]] server reports are held to it too: their names
// become NAME@REMOTE in menus, the CLI's output and the event log, where
// anything else (an '@', a '*', an escape sequence) could pass for
// something it is not.
func ValidName(name string) bool { return nameRE().MatchString(name) }
