package op_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/op"
)

// Each error of the core has its code and exit code once, for the server
// and the CLI alike.
func TestErrorsOfTheCoreHaveTheirExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
		exit int
	}{
		{fmt.Errorf("x: %w", auth.ErrNeedsSignIn), apitype.CodeNeedsSignIn, 3},
		{auth.ErrCredentialsRefused, apitype.CodeClientRefused, 3},
		{auth.ErrMinValidUnmeetable, apitype.CodeMinValidUnmeetable, 2},
		{auth.ErrUnreachable, apitype.CodeProviderUnreachable, 4},
		{auth.ErrRevokeFailed, apitype.CodeProviderUnreachable, 4},
		{fmt.Errorf("p: not refreshed: %w", auth.ErrStoreUnreachable), apitype.CodeStoreUnreachable, 4},
		{auth.ErrLoginTimeout, apitype.CodeTimeout, 1},
		{errors.New("disk full"), apitype.CodeInternal, 1},
		{op.Refusal(apitype.CodeRemoteConnection, "kept elsewhere", ""), apitype.CodeRemoteConnection, 2},
		{fmt.Errorf("save: %w", config.ErrNameTaken), apitype.CodeInvalidConfig, 2},
	} {
		if e := op.ErrorOf(tc.err); e.Code != tc.code || e.ExitCode != tc.exit {
			t.Errorf("%v: %s exit %d, want %s exit %d", tc.err, e.Code, e.ExitCode, tc.code, tc.exit)
		}
	}
}
