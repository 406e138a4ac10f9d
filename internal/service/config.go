package service

import (
	"context"
	"errors"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/fleet"
	"github.com/tokentray/tokentray/internal/op"
)

// The config operations: the editor window is a client of them, so the
// config file, the store and the test sign-in stay in the process that
// runs the keepers.

// editable is the fleet whose config can be edited, or the refusal.
func (s *Service) editable() (*fleet.Fleet, error) {
	if !s.Editable() {
		return nil, errNotEditable
	}
	return s.fleet, nil
}

// Config is the config file this tokentray runs, with its usable
// connections.
func (s *Service) Config(context.Context) (*apitype.Config, error) {
	f, err := s.editable()
	if err != nil {
		return nil, err
	}
	cfg := f.Config()
	out := apitype.Config{Path: cfg.Path, Connections: []apitype.ConnectionConfig{}}
	for _, c := range cfg.Connections {
		if r, err := cfg.Resolve(c.Name); err == nil {
			out.Connections = append(out.Connections, r.Table.Wire())
		}
	}
	return &out, nil
}

// ConfigConnection is name's table and whether a client secret is stored
// for it.
func (s *Service) ConfigConnection(ctx context.Context, name string) (*apitype.ConfiguredConnection, error) {
	f, err := s.editable()
	if err != nil {
		return nil, err
	}
	conn, err := f.Config().Resolve(name)
	if err != nil {
		return nil, op.Refusal(apitype.CodeUnknownConnection, "no connection named "+quote(name)+" in "+f.Config().Path, "")
	}
	out := apitype.ConfiguredConnection{Connection: conn.Table.Wire()}
	switch _, err := f.ClientSecret(ctx, name); {
	case err == nil:
		out.SecretStored = true
	case !errors.Is(err, auth.ErrNotStored):
		out.SecretError = err.Error()
	}
	return &out, nil
}

// SaveConnection writes a connection into the config file and runs it:
// replacing names the connection edited, "" adds one.
func (s *Service) SaveConnection(ctx context.Context, replacing string, in apitype.SaveConnection) (*apitype.Saved, error) {
	f, err := s.editable()
	if err != nil {
		return nil, err
	}
	err = f.Save(ctx, fleet.Save{Replacing: replacing, Connection: config.FromWire(in.Connection), Secret: auth.Secret(in.Secret), TestID: in.TestID})
	return saved(f.Config().Path, err)
}

// RemoveConnection signs name out, forgets its client secret and takes it
// out of the config file; localOnly does not ask the provider to revoke.
func (s *Service) RemoveConnection(ctx context.Context, name string, localOnly bool) (*apitype.Saved, error) {
	f, err := s.editable()
	if err != nil {
		return nil, err
	}
	return saved(f.Config().Path, f.Remove(ctx, name, localOnly))
}

// TestSignIn signs in once with a connection as the editor has it and
// returns when it has ended (or ctx ends: the window closed); nothing is
// saved until SaveConnection names its TestID.
func (s *Service) TestSignIn(ctx context.Context, in apitype.TestSignIn) (*apitype.Tested, error) {
	f, err := s.editable()
	if err != nil {
		return nil, err
	}
	out, err := f.TestSignIn(ctx, fleet.Test{Replacing: in.Replacing, Connection: config.FromWire(in.Connection), Secret: auth.Secret(in.Secret)})
	if err != nil {
		return nil, err
	}
	return &apitype.Tested{TestID: out.ID, AuthMethod: out.Resolution.AuthMethod, AuthMethodFrom: out.Resolution.AuthMethodFrom,
		Check: op.Check(out.Check)}, nil
}

// saved is a save's or a removal's outcome: done, done with a problem (the
// file is written; the store is not in line), or refused.
func saved(path string, err error) (*apitype.Saved, error) {
	var partly *fleet.SavedWithProblems
	switch {
	case err == nil:
		return &apitype.Saved{Path: path}, nil
	case errors.As(err, &partly):
		return &apitype.Saved{Path: path, Problem: err.Error()}, nil
	}
	return nil, err
}
