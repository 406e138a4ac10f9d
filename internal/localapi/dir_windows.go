package localapi

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// restrictSocket: the socket inherits the directory's private ACL.
func restrictSocket(string) error { return nil }

// restrictDir is the Windows counterpart of the 0700 directory: it
// refuses a directory owned by another user, and gives the directory a
// protected ACL that lets only this user in (nothing inherited), so no
// other user can reach, replace or connect to the socket inside it.
func restrictDir(dir string) error {
	me, err := currentUserSID()
	if err != nil {
		return fmt.Errorf("who am I: %w", err)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("read the owner of %s: %w", dir, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("read the owner of %s: %w", dir, err)
	}
	if !windows.EqualSid(owner, me) {
		return fmt.Errorf("%s belongs to %s, not to you (%s): remove it", dir, owner, me)
	}
	private, err := windows.SecurityDescriptorFromString("D:P(A;OICI;GA;;;" + me.String() + ")")
	if err != nil {
		return err
	}
	dacl, _, err := private.DACL()
	if err != nil {
		return err
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		return fmt.Errorf("restrict %s to you: %w", dir, err)
	}
	return nil
}
