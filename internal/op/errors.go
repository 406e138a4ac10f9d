package op

import (
	"context"
	"errors"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
)

// ErrorOf is the API's error for err: a refusal of the service's own
// (*apitype.Error) as it is, a config problem as invalid_config with the
// fields at fault, and an error of the core with the code, the next step
// and the exit code of its meaning. The local API answers with it, and
// the CLI takes its exit code from it when it worked without a running
// tokentray, so that a command means the same either way.
func ErrorOf(err error) apitype.Error {
	var ae *apitype.Error
	var inv config.FieldErrors
	var ve *config.ValidationError
	var cf *fleet.CheckFailed
	var e apitype.Error
	switch {
	case errors.As(err, &ae):
		e = *ae
	case errors.As(err, &inv):
		e = apitype.Error{Code: apitype.CodeInvalidConfig, Message: err.Error(), Fields: inv.ByKey()}
	case errors.As(err, &ve), errors.Is(err, config.ErrNameTaken):
		e = apitype.Error{Code: apitype.CodeInvalidConfig, Message: err.Error()}
	case errors.Is(err, config.ErrNoSuchConnection):
		e = apitype.Error{Code: apitype.CodeUnknownConnection, Message: err.Error()}
	case errors.As(err, &cf):
		e = apitype.Error{Code: apitype.CodeCheckFailed, Message: err.Error(), Hint: Hint(cf.Next(), ""), Next: cf.Next()}
	default:
		e = apitype.Error{Code: codeOf(err), Message: err.Error()}
		if next := auth.NextStepOf(err); next != nil {
			e.Next, e.Hint = next, Hint(next, "")
		}
	}
	e.ExitCode = apitype.ExitCodeOf(e.Code)
	return e
}

// codeOf is the API's code for an error of the core.
func codeOf(err error) string {
	switch {
	case errors.Is(err, auth.ErrMinValidUnmeetable):
		return apitype.CodeMinValidUnmeetable
	case errors.Is(err, auth.ErrBoundToken):
		return apitype.CodeTokenBound
	case errors.Is(err, auth.ErrSignInBusy), errors.Is(err, auth.ErrNoSignIn):
		return apitype.CodeBadRequest
	case errors.Is(err, auth.ErrCredentialsRefused):
		return apitype.CodeClientRefused
	case errors.Is(err, auth.ErrNeedsSignIn):
		return apitype.CodeNeedsSignIn
	case errors.Is(err, auth.ErrStoreUnreachable):
		return apitype.CodeStoreUnreachable
	case errors.Is(err, auth.ErrUnreachable), errors.Is(err, auth.ErrRevokeFailed):
		return apitype.CodeProviderUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, auth.ErrLoginTimeout):
		return apitype.CodeTimeout
	}
	return apitype.CodeInternal
}

// Refusal is the service's own refusal of a request: code (apitype's),
// what is wrong, and what to do instead ("" for nothing to add).
func Refusal(code, message, hint string) error {
	return &apitype.Error{Code: code, Message: message, Hint: hint, ExitCode: apitype.ExitCodeOf(code)}
}
