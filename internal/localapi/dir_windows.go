package localapi

// checkPrivateDir: the directory under the user's profile is private by its
// ACL on Windows.
func checkPrivateDir(string) error { return nil }
