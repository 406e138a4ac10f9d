package localapi

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/tokentray/tokentray/client/apitype"
)

// The config endpoints, for the editor window: the config file, the store
// and the test sign-in stay in the process that runs the keepers.

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.Config(r.Context())
	answer(w, http.StatusOK, out, err)
}

func (s *Server) getConfigConnection(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.ConfigConnection(r.Context(), r.PathValue("name"))
	answer(w, http.StatusOK, out, err)
}

// saveConnection adds a connection (POST) or edits {name} (PUT).
func (s *Server) saveConnection(w http.ResponseWriter, r *http.Request) {
	var in apitype.SaveConnection
	if !readJSON(w, r, &in) {
		return
	}
	out, err := s.Backend.SaveConnection(r.Context(), r.PathValue("name"), in)
	answer(w, http.StatusOK, out, err)
}

func (s *Server) removeConnection(w http.ResponseWriter, r *http.Request) {
	out, err := s.Backend.RemoveConnection(r.Context(), r.PathValue("name"), r.URL.Query().Get("local_only") == "true")
	answer(w, http.StatusOK, out, err)
}

// testSignIn signs in once with the editor's form and answers when it has
// ended; a client that goes away (the window closed) stops it.
func (s *Server) testSignIn(w http.ResponseWriter, r *http.Request) {
	var in apitype.TestSignIn
	if !readJSON(w, r, &in) {
		return
	}
	out, err := s.Backend.TestSignIn(r.Context(), in)
	answer(w, http.StatusOK, out, err)
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
