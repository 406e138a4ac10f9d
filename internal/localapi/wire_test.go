package localapi_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/client/nextstep"
	"github.com/tokentray/tokentray/internal/apiclient"
	"github.com/tokentray/tokentray/internal/humanize"
	"github.com/tokentray/tokentray/internal/localapi"
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

// Each code has one HTTP status, whichever endpoint answers with it.
func TestEachErrorCodeHasItsStatus(t *testing.T) {
	for code, want := range map[string]int{
		apitype.CodeNotFound: 404, apitype.CodeUnknownConnection: 404, apitype.CodeBadRequest: 400,
		apitype.CodeMinValidUnmeetable: 400, apitype.CodeForbidden: 403, apitype.CodeInvalidConfig: 422,
		apitype.CodeClientRefused: 409, apitype.CodeNeedsSignIn: 409, apitype.CodeHeadless: 409,
		apitype.CodeRemoteConnection: 409, apitype.CodeTokenBound: 409, apitype.CodeCheckFailed: 409,
		apitype.CodeProviderUnreachable: 502, apitype.CodeAPIUnreachable: 502, apitype.CodeStoreUnreachable: 502, apitype.CodeTimeout: 504,
		apitype.CodeInternal: 500, "a_code_from_the_future": 500,
	} {
		if got := localapi.StatusOf(code); got != want {
			t.Errorf("%s: HTTP %d, want %d", code, got, want)
		}
	}
}

// On the wire a step comes twice: as data ("next") and said for a
// terminal ("hint"), which scripts and older clients read. Advice that an
// older tokentray kept in words comes as "hint" alone, as it is.
func TestTheWireCarriesTheStepAndItsWordsForOlderClients(t *testing.T) {
	next := &nextstep.Step{Kind: nextstep.SignInAgain, Connection: "e2e"}
	for _, tc := range []struct {
		name string
		st   auth.Status
		want []string
	}{
		{"a step", auth.Status{Name: "e2e", Next: next},
			[]string{`"hint":"Sign in again with ` + "`tokentray login e2e`" + `."`, `"next":{"kind":"sign_in_again","connection":"e2e"}`}},
		{"words an older tokentray kept", auth.Status{Name: "e2e", Hint: "The provider had a server error; tokentray retries with backoff."},
			[]string{`"hint":"The provider had a server error; tokentray retries with backoff."`}},
	} {
		b, _ := json.Marshal(op.Status(tc.st))
		for _, want := range tc.want {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: %s\nwant %s", tc.name, b, want)
			}
		}
		if tc.st.Next == nil && strings.Contains(string(b), `"next"`) {
			t.Errorf("%s: %s has a step", tc.name, b)
		}
	}
	e := op.ErrorOf(fmt.Errorf("e2e: %w", &auth.TokenError{Op: "refresh", Next: next}))
	if e.Next != next || e.Hint != "Sign in again with `tokentray login e2e`." {
		t.Errorf("error answer: next %+v, hint %q", e.Next, e.Hint)
	}
	res := op.Check(&auth.CheckResult{Error: "no check_url is configured", Next: &nextstep.Step{Kind: nextstep.SetCheckURL, Connection: "e2e"}})
	if res.Next == nil || res.Hint != "Set check_url in the config to a cheap GET that needs the token, e.g. a /me endpoint." {
		t.Errorf("check: next %+v, hint %q", res.Next, res.Hint)
	}
}

// A client of this version reads what an older server sends (no "next")
// and what a newer one sends (a kind it does not know) by the "hint".
func TestAClientShowsTheHintOfAnOlderOrNewerServer(t *testing.T) {
	for _, body := range []string{
		`{"name":"agent","state":"needs_reauth","hint":"Sign in again with ` + "`tokentray login agent`" + `."}`,
		`{"name":"agent","state":"needs_reauth","hint":"Sign in again with ` + "`tokentray login agent`" + `.","next":{"kind":"a_kind_from_the_future","connection":"agent"}}`,
	} {
		var st apitype.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if got := humanize.Advice(st.Next, st.Hint, humanize.Window); got != "Sign in again with `tokentray login agent`." {
			t.Errorf("%s: shown %q", body, got)
		}
	}
}
