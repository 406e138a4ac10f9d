package service

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/tokentray/tokentray/client/apitype"
	"github.com/tokentray/tokentray/internal/alerts"
	"github.com/tokentray/tokentray/internal/config"
	"github.com/tokentray/tokentray/internal/hook"
	"github.com/tokentray/tokentray/internal/localapi"
	"github.com/tokentray/tokentray/internal/proxy/proxykey"
	"github.com/tokentray/tokentray/internal/wake"
)

// tellBroken tells of each [[connection]] table that cannot be used, once
// per breakage: in the log, to a person through the shell, and with the
// file's top-level on_alert (kind invalid_config; the table's own on_alert
// may be what is broken). The other connections run on.
func (s *Service) tellBroken(ctx context.Context) {
	s.fleet.OnBroken(func(b config.Broken) {
		cfg := s.fleet.Config()
		s.opt.Log.Error("a connection cannot be used until its table is fixed; the others run on", "connection", b.Label, "problems", b.Problems.Error(), "config", cfg.Path)
		if s.shell != nil {
			s.shell.Problem(b.Error())
		}
		if cfg.OnAlert == "" {
			return
		}
		name := b.Name
		if name == "" {
			name = b.Label
		}
		a := alerts.Alert{Connection: name, Kind: alerts.InvalidConfig, To: apitype.StateInvalidConfig, Error: b.Error(),
			Hint: "fix its [[connection]] table in " + cfg.Path, Time: s.opt.Clock.Now()}
		go s.hooks.RunAndLog(ctx, cfg.OnAlert, hook.Payload{Alert: a})
	})
}

// servePorts opens the loopback proxy ports of the connections that have a
// proxy_port, following the config, until ctx ends. Their keys are read
// from their files at each request: a rotation applies at once.
func (s *Service) servePorts(ctx context.Context, api *localapi.Server) {
	var mu sync.Mutex
	var opened *proxykey.Keys
	keys := func() (*proxykey.Keys, error) { // opened when first needed
		mu.Lock()
		defer mu.Unlock()
		if opened == nil {
			k, err := proxykey.Open()
			if err != nil {
				return nil, err
			}
			opened = k
		}
		return opened, nil
	}
	p := &localapi.Ports{Server: api, Problem: s.problem,
		Key: func(name string) (string, error) {
			k, err := keys()
			if err != nil {
				return "", err
			}
			return k.Get(name)
		},
		TLS: func() (*tls.Certificate, error) {
			k, err := keys()
			if err != nil {
				return nil, err
			}
			t, err := k.TLS()
			if err != nil {
				return nil, err
			}
			return &t.Certificate, nil
		}}
	p.Sync(s.fleet.Keepers())
	s.fleet.OnChange(func() { p.Sync(s.fleet.Keepers()) })
	go func() {
		<-ctx.Done()
		p.Close()
	}()
}

// watchResume calls wakeUp when the machine resumes from suspend: on
// logind's signal, or, without logind, when the wall clock has run ahead
// of the monotonic one (looked at every 30 s, once for the whole process).
// The keepers sleep until their next due time (MaxSleep), so this is what
// catches up after a suspend.
func watchResume(ctx context.Context, wakeUp func(), log *slog.Logger) {
	wakeAll := func() {
		log.Info("resumed from suspend: checking every connection now")
		wakeUp()
	}
	conn, err := dbus.ConnectSystemBus()
	if err == nil {
		err = wake.Watch(ctx, conn, wakeAll)
	}
	if err != nil {
		log.Info("resume from suspend is noticed by the wall clock (within 30 s)", "err", err)
		if conn != nil {
			conn.Close()
		}
		go wake.Jumps(ctx, 30*time.Second, 5*time.Second, wakeAll)
		return
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
}
