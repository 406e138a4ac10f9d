package config

import "github.com/tokentray/tokentray/client/apitype"

// Wire is the table as the local API carries it (the editor window).
func (c Connection) Wire() apitype.ConnectionConfig {
	return apitype.ConnectionConfig{
		Name: c.Name, Provider: c.Provider, Environment: c.Environment, Grant: c.Grant, ClientID: c.ClientID,
		RedirectURI: c.RedirectURI, Scopes: c.Scopes, RefreshAt: c.RefreshAt, ExportFile: c.ExportFile,
		TokenEnv: c.TokenEnv, OnAlert: c.OnAlert, AuthURL: c.AuthURL, TokenURL: c.TokenURL, RevokeURL: c.RevokeURL,
		APIBase: c.APIBase, CheckURL: c.CheckURL, Issuer: c.Issuer, AuthMethod: c.AuthMethod,
		AuthParams: c.AuthParams, TokenParams: c.TokenParams, APIHeaders: c.APIHeaders, ProxyPort: c.ProxyPort,
		DeviceAuthURL: c.DeviceAuthURL, TokenInfoURL: c.TokenInfoURL, PARURL: c.PARURL, DPoP: c.DPoP, Handle: c.Handle,
		Tenant: c.Tenant, CompanyID: c.CompanyID, RefreshTokenIdle: c.RefreshTokenIdle, RefreshTokenLifetime: c.RefreshTokenLifetime,
		RefreshTokenWarning: c.RefreshTokenWarning, AccessTokenLifetime: c.AccessTokenLifetime, RequestTimeout: c.RequestTimeout,
	}
}

// FromWire is a table from the local API.
func FromWire(c apitype.ConnectionConfig) Connection {
	return Connection{
		Name: c.Name, Provider: c.Provider, Environment: c.Environment, Grant: c.Grant, ClientID: c.ClientID,
		RedirectURI: c.RedirectURI, Scopes: c.Scopes, RefreshAt: c.RefreshAt, ExportFile: c.ExportFile,
		TokenEnv: c.TokenEnv, OnAlert: c.OnAlert, AuthURL: c.AuthURL, TokenURL: c.TokenURL, RevokeURL: c.RevokeURL,
		APIBase: c.APIBase, CheckURL: c.CheckURL, Issuer: c.Issuer, AuthMethod: c.AuthMethod,
		AuthParams: c.AuthParams, TokenParams: c.TokenParams, APIHeaders: c.APIHeaders, ProxyPort: c.ProxyPort,
		DeviceAuthURL: c.DeviceAuthURL, TokenInfoURL: c.TokenInfoURL, PARURL: c.PARURL, DPoP: c.DPoP, Handle: c.Handle,
		Tenant: c.Tenant, CompanyID: c.CompanyID, RefreshTokenIdle: c.RefreshTokenIdle, RefreshTokenLifetime: c.RefreshTokenLifetime,
		RefreshTokenWarning: c.RefreshTokenWarning, AccessTokenLifetime: c.AccessTokenLifetime, RequestTimeout: c.RequestTimeout,
	}
}
