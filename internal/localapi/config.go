package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/op"
)

// Editable is the running set of connections as the config endpoints
// change it: the fleet. The editor window is a client of these endpoints,
// so the config file, the keyring and the test sign-in stay in the
// process that runs the keepers.
type Editable interface {
	Config() *config.Config
	ClientSecret(ctx context.Context, name string) (auth.Secret, error)
	SetClientSecret(ctx context.Context, name string, secret auth.Secret) error
	Save(ctx context.Context, s fleet.Save) error
	Remove(ctx context.Context, name string, localOnly bool) error
	TestSignIn(ctx context.Context, t fleet.Test) (fleet.Tested, error)
}

// editable answers 404 when this process edits no config (a demo).
func (s *Server) editable(w http.ResponseWriter) Editable {
	if s.Connections == nil {
		writeError(w, http.StatusNotFound, apitype.Error{Code: apitype.CodeNotFound, Message: "this tokentray runs no config file that could be edited"})
	}
	return s.Connections
}

func (s *Server) getConfig(w http.ResponseWriter, _ *http.Request) {
	ed := s.editable(w)
	if ed == nil {
		return
	}
	cfg := ed.Config()
	out := apitype.Config{Path: cfg.Path, Connections: []apitype.ConnectionConfig{}}
	for _, c := range cfg.Connections {
		if r, err := cfg.Resolve(c.Name); err == nil {
			out.Connections = append(out.Connections, r.Table.Wire())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getConfigConnection(w http.ResponseWriter, r *http.Request) {
	ed := s.editable(w)
	if ed == nil {
		return
	}
	name := r.PathValue("name")
	conn, err := ed.Config().Resolve(name)
	if err != nil {
		writeError(w, http.StatusNotFound, apitype.Error{Code: apitype.CodeUnknownConnection, Message: "no connection named " + quote(name) + " in " + ed.Config().Path})
		return
	}
	out := apitype.ConfiguredConnection{Connection: conn.Table.Wire()}
	switch _, err := ed.ClientSecret(r.Context(), name); {
	case err == nil:
		out.SecretStored = true
	case !errors.Is(err, auth.ErrNotStored):
		out.SecretError = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

// saveConnection adds a connection (POST) or edits {name} (PUT).
func (s *Server) saveConnection(w http.ResponseWriter, r *http.Request) {
	ed := s.editable(w)
	if ed == nil {
		return
	}
	var in apitype.SaveConnection
	if !readJSON(w, r, &in) {
		return
	}
	err := ed.Save(r.Context(), fleet.Save{Replacing: r.PathValue("name"), Connection: config.FromWire(in.Connection),
		Secret: auth.Secret(in.Secret), TestID: in.TestID})
	writeSaved(w, ed.Config().Path, err)
}

func (s *Server) removeConnection(w http.ResponseWriter, r *http.Request) {
	ed := s.editable(w)
	if ed == nil {
		return
	}
	err := ed.Remove(r.Context(), r.PathValue("name"), r.URL.Query().Get("local_only") == "true")
	writeSaved(w, ed.Config().Path, err)
}

// testSignIn signs in once with the editor's form and answers when it has
// ended; a client that goes away (the window closed) stops it.
func (s *Server) testSignIn(w http.ResponseWriter, r *http.Request) {
	ed := s.editable(w)
	if ed == nil {
		return
	}
	var in apitype.TestSignIn
	if !readJSON(w, r, &in) {
		return
	}
	out, err := ed.TestSignIn(r.Context(), fleet.Test{Replacing: in.Replacing, Connection: config.FromWire(in.Connection), Secret: auth.Secret(in.Secret)})
	if err != nil {
		writeConfigError(w, err)
		return
	}
	res := apitype.Tested{TestID: out.ID, AuthMethod: out.Resolution.AuthMethod, AuthMethodFrom: out.Resolution.AuthMethodFrom}
	res.Check = op.Check(out.Check)
	writeJSON(w, http.StatusOK, res)
}

// writeSaved answers a save or removal: done, done with a problem (the
// file is written; the keyring is not in line), or refused.
func writeSaved(w http.ResponseWriter, path string, err error) {
	var partly *fleet.SavedWithProblems
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, apitype.Saved{Path: path})
	case errors.As(err, &partly):
		writeJSON(w, http.StatusOK, apitype.Saved{Path: path, Problem: err.Error()})
	default:
		writeConfigError(w, err)
	}
}

// writeConfigError answers with a config problem, naming the fields at
// fault where they are known, or with the keeper's error.
func writeConfigError(w http.ResponseWriter, err error) {
	var inv config.FieldErrors
	var ve *config.ValidationError
	var cf *fleet.CheckFailed
	switch {
	case errors.As(err, &inv):
		writeError(w, http.StatusUnprocessableEntity, apitype.Error{Code: apitype.CodeInvalidConfig, Message: err.Error(), Fields: inv.ByKey()})
	case errors.As(err, &ve), errors.Is(err, config.ErrNameTaken):
		writeError(w, http.StatusUnprocessableEntity, apitype.Error{Code: apitype.CodeInvalidConfig, Message: err.Error()})
	case errors.Is(err, config.ErrNoSuchConnection):
		writeError(w, http.StatusNotFound, apitype.Error{Code: apitype.CodeUnknownConnection, Message: err.Error()})
	case errors.As(err, &cf):
		writeError(w, http.StatusConflict, apitype.Error{Code: apitype.CodeCheckFailed, Message: err.Error(), Hint: op.Hint(cf.Next(), ""), Next: cf.Next()})
	default:
		writeKeeperError(w, err)
	}
}

// readJSON reads a request's JSON body (at most 1 MiB), answering 400 when
// it is not what the endpoint takes.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: "the request body is not what this endpoint takes: " + err.Error()})
		return false
	}
	return true
}

// setClientSecret stores a connection's new client secret in the running
// tokentray's store (`tokentray secret NAME`), and answers with the
// connection: a client that was refused has been tried again.
func (s *Server) setClientSecret(w http.ResponseWriter, r *http.Request) {
	ed := s.editable(w)
	if ed == nil {
		return
	}
	k := s.keeper(w, r)
	if k == nil {
		return
	}
	var in apitype.ClientSecret
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || in.ClientSecret == "" {
		writeError(w, http.StatusBadRequest, apitype.Error{Code: apitype.CodeBadRequest, Message: `the body must be {"client_secret": "…"}, not empty`})
		return
	}
	if err := ed.SetClientSecret(r.Context(), k.Connection().Name, auth.Secret(in.ClientSecret)); err != nil {
		writeConfigError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, op.Describe(k))
}
