//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestHydraSmoke proves the Hydra harness, and the Hydra behaviour tokentray
// must cope with, with golang.org/x/oauth2 alone: no tokentray involved.
func TestHydraSmoke(t *testing.T) {
	h := startHydra(t, hydraOptions{})
	ctx := t.Context()

	var disc struct {
		Issuer                string   `json:"issuer"`
		Authorization         string   `json:"authorization_endpoint"`
		Token                 string   `json:"token_endpoint"`
		Revocation            string   `json:"revocation_endpoint"`
		Userinfo              string   `json:"userinfo_endpoint"`
		AuthMethods           []string `json:"token_endpoint_auth_methods_supported"`
		AuthResponseIssParam  bool     `json:"authorization_response_iss_parameter_supported"`
		CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
		GrantTypes            []string `json:"grant_types_supported"`
		RevocationAuthMethods []string `json:"revocation_endpoint_auth_methods_supported"`
	}
	resp, err := http.Get(h.Public + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: HTTP %d, %v", resp.StatusCode, err)
	}
	t.Logf("discovery: %+v", disc)
	if disc.Issuer != h.Issuer {
		t.Errorf("discovery issuer %q, want %q", disc.Issuer, h.Issuer)
	}
	if disc.Revocation == "" || disc.Userinfo == "" || disc.Token == "" || disc.Authorization == "" {
		t.Errorf("discovery lacks an endpoint: %+v", disc)
	}
	if !slices.Contains(disc.AuthMethods, "client_secret_basic") || !slices.Contains(disc.AuthMethods, "client_secret_post") {
		t.Errorf("token_endpoint_auth_methods_supported = %v", disc.AuthMethods)
	}

	conf := &oauth2.Config{
		ClientID:     h.Browser.ID,
		ClientSecret: h.Browser.Secret,
		Endpoint:     oauth2.Endpoint{AuthURL: disc.Authorization, TokenURL: disc.Token, AuthStyle: oauth2.AuthStyleInHeader},
		RedirectURL:  h.Redirect,
		Scopes:       []string{"openid", "offline_access", "offline"},
	}
	// signIn runs the browser part with PKCE and returns the code and verifier.
	signIn := func(conf *oauth2.Config) (code, verifier string) {
		t.Helper()
		verifier = oauth2.GenerateVerifier()
		state := rand.Text()
		cb, err := h.hydraBrowser(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		q := cb.Query()
		if q.Get("state") != state || q.Get("code") == "" {
			t.Fatalf("callback %s: no code or wrong state", cb.Redacted())
		}
		t.Logf("callback parameters: %v (iss %q)", slices.Sorted(maps.Keys(q)), q.Get("iss"))
		return q.Get("code"), verifier
	}
	retrieveError := func(what string, err error, wantCode string) *oauth2.RetrieveError {
		t.Helper()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("%s: got %v, want the error %s", what, err, wantCode)
		}
		t.Logf("%s: HTTP %d %s: error_description %q; body %s", what, re.Response.StatusCode, re.ErrorCode, re.ErrorDescription, re.Body)
		if re.ErrorCode != wantCode {
			t.Errorf("%s: error %q, want %q", what, re.ErrorCode, wantCode)
		}
		return re
	}
	active := func(token string) bool {
		t.Helper()
		return h.Introspect(token)["active"] == true
	}

	code, verifier := signIn(conf)
	if h.Logins.Load() != 1 || h.Consents.Load() != 1 {
		t.Errorf("login app saw %d logins, %d consents; want 1 each", h.Logins.Load(), h.Consents.Load())
	}

	// The secret in the form body: Hydra registered the client for
	// client_secret_basic and refuses it. Client authentication comes first,
	// so the code is still good afterwards.
	inParams := *conf
	inParams.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	_, err = inParams.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	retrieveError("code exchange with client_secret_post", err, "invalid_client")

	tok0, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if tok0.RefreshToken == "" || tok0.AccessToken == "" {
		t.Fatalf("code exchange: no refresh or access token: %+v", tok0)
	}
	t.Logf("code exchange: expires_in %v, scope %v", tok0.ExpiresIn, tok0.Extra("scope"))
	if !active(tok0.AccessToken) {
		t.Error("fresh access token is not active")
	}

	refresh := func(rt string) (*oauth2.Token, error) {
		// No access token: the token source refreshes at once.
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	prev := tok0
	for i := 1; i <= 2; i++ {
		tok, err := refresh(prev.RefreshToken)
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if tok.RefreshToken == "" || tok.RefreshToken == prev.RefreshToken {
			t.Errorf("refresh %d: the refresh token did not rotate", i)
		}
		if tok.AccessToken == prev.AccessToken {
			t.Errorf("refresh %d: same access token", i)
		}
		if active(prev.AccessToken) {
			t.Errorf("refresh %d: the previous access token is still active", i)
		}
		if !active(tok.AccessToken) {
			t.Errorf("refresh %d: the new access token is not active", i)
		}
		prev = tok
	}

	// Reusing a rotated refresh token: invalid_grant, and (fosite) the whole
	// chain, including the newest tokens, is revoked.
	_, err = refresh(tok0.RefreshToken)
	retrieveError("reused refresh token", err, "invalid_grant")
	if active(prev.AccessToken) {
		t.Error("after refresh-token reuse the newest access token is still active")
	}
	_, err = refresh(prev.RefreshToken)
	retrieveError("newest refresh token after reuse", err, "invalid_grant")

	// Exact redirect URIs: 127.0.0.1 is not localhost.
	other := *conf
	other.RedirectURL = fmt.Sprintf("http://127.0.0.1:%d/callback", h.CallbackPort)
	end, err := h.hydraBrowser(other.AuthCodeURL(rand.Text()))
	switch {
	case err == nil && end.Query().Get("code") != "":
		t.Errorf("redirect %s was accepted although only %s is registered", other.RedirectURL, h.Redirect)
	case err == nil:
		t.Logf("redirect %s: sent back to it with error %q: %q", other.RedirectURL, end.Query().Get("error"), end.Query().Get("error_description"))
	default:
		t.Logf("redirect %s refused: %v; error %q: %q", other.RedirectURL, err, end.Query().Get("error"), end.Query().Get("error_description"))
	}

	// Without offline_access/offline: no refresh token.
	online := *conf
	online.Scopes = []string{"openid"}
	code, verifier = signIn(&online)
	tok, err := online.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange without offline scope: %v", err)
	}
	if tok.RefreshToken != "" {
		t.Error("a refresh token without offline_access/offline scope")
	}

	// The service account.
	cc := clientcredentials.Config{ClientID: h.Service.ID, ClientSecret: h.Service.Secret, TokenURL: disc.Token,
		Scopes: []string{"api"}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err = cc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if tok.RefreshToken != "" || !active(tok.AccessToken) {
		t.Errorf("client_credentials: refresh token %v, active %v", tok.RefreshToken != "", active(tok.AccessToken))
	}
	t.Logf("service client: token_endpoint_auth_method %v", h.Service.JSON["token_endpoint_auth_method"])
}
