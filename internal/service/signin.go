package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/op"
)

// The sign-ins in progress that outlive the request that started them: one
// completed by a pasted address (the browser is on another machine), and
// one with a code that waits for a person (RFC 8628). The PKCE verifier
// and the state stay in this process.

// pasteSignIn is a sign-in that waits for the address the person's
// browser landed on.
type pasteSignIn struct {
	address *io.PipeWriter
	done    chan error    // the sign-in's outcome, once
	ended   chan struct{} // closed when the sign-in has returned
}

// deviceSignIn is a sign-in with a code that waits for a person.
type deviceSignIn struct {
	code  chan auth.DeviceCode // the code, once shown
	err   error                // the outcome, once ended (under Service.mu)
	ended chan struct{}        // closed when the sign-in has returned
}

func (d *deviceSignIn) over() bool {
	select {
	case <-d.ended:
		return true
	default:
		return false
	}
}

// StartPasteLogin starts a sign-in of name that completes with the address
// the browser lands on (PasteLogin): `tokentray login NAME --paste`. The
// answer is the URL to open. The sign-in waits for the address until
// timeout (0: the core's default); a second start replaces the first.
func (s *Service) StartPasteLogin(ctx context.Context, name string, timeout time.Duration) (*apitype.PasteSignIn, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	timeout = loginTimeout(timeout)
	pr, pw := io.Pipe()
	p := &pasteSignIn{address: pw, done: make(chan error, 1), ended: make(chan struct{})}
	s.mu.Lock()
	old := s.pastes[name]
	s.pastes[name] = p
	s.mu.Unlock()
	if old != nil {
		// A person who started again: the earlier sign-in ends first, so
		// that this one is a sign-in of its own, not a wait for that one.
		_ = old.address.CloseWithError(errors.New("a newer sign-in by pasting replaced this one"))
		select {
		case <-old.ended:
		case <-ctx.Done():
			s.mu.Lock()
			if s.pastes[name] == p {
				delete(s.pastes, name) // never started: nothing may wait for it
			}
			s.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	shown := make(chan string, 1)
	go func() {
		select {
		case <-s.opt.Clock.After(timeout):
			_ = pw.CloseWithError(fmt.Errorf("%w: nothing was pasted within %s", auth.ErrLoginTimeout, timeout))
		case <-p.ended:
		}
	}()
	go func() {
		defer close(p.ended)
		err := k.Login(context.WithoutCancel(ctx), auth.LoginOptions{Timeout: timeout, Paste: pr, PasteOnly: true,
			ShowURL: func(u string) {
				select {
				case shown <- u:
				default:
				}
			}})
		s.mu.Lock()
		if s.pastes[name] == p {
			delete(s.pastes, name)
		}
		s.mu.Unlock()
		p.done <- err
	}()
	select {
	case u := <-shown:
		return &apitype.PasteSignIn{AuthorizeURL: u, RedirectURI: k.Connection().RedirectURI.Raw}, nil
	case err := <-p.done:
		return nil, err
	case <-ctx.Done():
		_ = pw.CloseWithError(ctx.Err())
		return nil, ctx.Err()
	}
}

// PasteLogin completes the sign-in StartPasteLogin began with the address
// the browser landed on (or an out-of-band code), and returns when the
// code has been exchanged and the tokens saved.
func (s *Service) PasteLogin(ctx context.Context, name, address string) (*apitype.Connection, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	address = strings.TrimSpace(address)
	if address == "" || strings.ContainsAny(address, "\r\n") {
		return nil, op.Refusal(apitype.CodeBadRequest, "the address must be one line: the whole address the browser landed on, or the code", "")
	}
	s.mu.Lock()
	p := s.pastes[name]
	s.mu.Unlock()
	if p == nil {
		return nil, op.Refusal(apitype.CodeBadRequest, "no sign-in of "+quote(name)+" waits for a pasted address",
			"start one: tokentray login "+name+" --paste")
	}
	if _, err := io.WriteString(p.address, address+"\n"); err != nil {
		return nil, <-p.done
	}
	select {
	case err := <-p.done:
		if err != nil {
			return nil, err
		}
		return s.describe(k), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// StartDeviceLogin starts a sign-in of name with a code (`tokentray login
// NAME --device`, headless servers included) and returns the code to show;
// the sign-in goes on here, up to timeout (0: as long as the code is
// valid). A second start while one waits returns the code of that one.
// It returns nil and no error when the sign-in it joined is over and
// signed in. The last one's outcome is kept until the next starts, for
// WaitDeviceLogin however late it asks.
func (s *Service) StartDeviceLogin(ctx context.Context, name string, timeout time.Duration) (*apitype.DeviceSignIn, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil || d.over() {
		d = &deviceSignIn{code: make(chan auth.DeviceCode, 1), ended: make(chan struct{})}
		s.devices[name] = d
		go func() {
			err := k.Login(context.WithoutCancel(ctx), auth.LoginOptions{Timeout: timeout, Device: true,
				ShowCode: func(c auth.DeviceCode) { d.code <- c }})
			s.mu.Lock()
			d.err = err
			s.mu.Unlock()
			close(d.ended)
		}()
	}
	s.mu.Unlock()
	answer := func(c auth.DeviceCode) *apitype.DeviceSignIn {
		d.code <- c // for the next caller
		return deviceCode(c)
	}
	select {
	case c := <-d.code:
		return answer(c), nil
	case <-d.ended:
		select {
		case c := <-d.code: // shown, then over at once: the code was shown
			return answer(c), nil
		default:
		}
		s.mu.Lock()
		err := d.err
		s.mu.Unlock()
		return nil, err // nil: it joined a sign-in that finished
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// deviceCode is a sign-in's code as the API shows it.
func deviceCode(c auth.DeviceCode) *apitype.DeviceSignIn {
	return &apitype.DeviceSignIn{UserCode: c.UserCode, VerificationURI: c.VerificationURI,
		VerificationURIComplete: c.VerificationURIComplete, Expires: c.Expires}
}

// WaitDeviceLogin waits for the sign-in with a code of name to end.
func (s *Service) WaitDeviceLogin(ctx context.Context, name string) (*apitype.Connection, error) {
	k, err := s.keeper(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	d := s.devices[name]
	s.mu.Unlock()
	if d == nil {
		return nil, op.Refusal(apitype.CodeBadRequest, "no sign-in of "+quote(name)+" with a code is waiting",
			"start one: tokentray login "+name+" --device")
	}
	select {
	case <-d.ended:
		s.mu.Lock()
		err := d.err
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return s.describe(k), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
