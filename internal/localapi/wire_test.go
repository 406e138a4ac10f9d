package localapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/op"
)

// fill sets every field of the struct v points to, recursively, to a value
// that is not its zero value, so that a field left out of a conversion shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 1, 0, 0, *n, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	}
}

// The API's status is the core's status field for field: a field added to
// auth.Status and not carried to the wire fails here, and so does a wire
// name changed by accident (the JSON of both must be the same).
func TestTheWireStatusCarriesEveryFieldOfTheCoresStatus(t *testing.T) {
	var st auth.Status
	fill(reflect.ValueOf(&st).Elem(), new(int))
	core, _ := json.Marshal(st)
	wire, _ := json.Marshal(op.Status(st))
	if string(core) != string(wire) {
		t.Fatalf("the wire status differs from the core's:\ncore %s\nwire %s", core, wire)
	}
}

func TestTheWireStatesAreTheCoresStates(t *testing.T) {
	for core, wire := range map[auth.State]string{
		auth.StateDisconnected: apitype.StateDisconnected, auth.StateConnected: apitype.StateConnected,
		auth.StateRefreshing: apitype.StateRefreshing, auth.StateDegraded: apitype.StateDegraded,
		auth.StateNeedsReauth: apitype.StateNeedsReauth, auth.StateClientRefused: apitype.StateClientRefused,
	} {
		if string(core) != wire {
			t.Errorf("core state %q is %q on the wire", core, wire)
		}
	}
	if apiclient.DefaultMinValid != auth.DefaultMinValid {
		t.Errorf("the client's default min_valid %v is not the core's %v", apiclient.DefaultMinValid, auth.DefaultMinValid)
	}
}

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
		{auth.ErrLoginTimeout, apitype.CodeTimeout, 1},
		{errors.New("disk full"), apitype.CodeInternal, 1},
	} {
		if _, e := ErrorOf(tc.err); e.Code != tc.code || e.ExitCode != tc.exit {
			t.Errorf("%v: %s exit %d, want %s exit %d", tc.err, e.Code, e.ExitCode, tc.code, tc.exit)
		}
	}
}
