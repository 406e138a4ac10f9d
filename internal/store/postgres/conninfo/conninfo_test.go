package conninfo

import (
	"strings"
	"testing"
)

func TestAPasswordInStoreURLIsRefused(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused bool
	}{
		{"postgres://tokentray:hunter2@db.example/tokentray", true},
		{"postgresql://tokentray:hunter2@db1:5432,db2:5432/tokentray?sslmode=verify-full", true},
		{"postgres://tokentray@db.example/tokentray?password=hunter2", true},
		{"host=db.example user=tokentray password=hunter2", true},
		{"host=db.example password = 'hunter2 with spaces' user=tokentray", true},
		{"host=db.example user=tokentray password=", true},
		{"postgres://tokentray@db.example/tokentray?sslmode=verify-full", false},
		{"postgresql://tokentray@db1:5432,db2:5432/tokentray", false},
		{"postgres:///tokentray?host=/run/postgresql", false},
		{"host=db.example user=tokentray dbname=tokentray application_name='a b\\'c'", false},
		{"host=db.example passfile=/etc/tokentray/pgpass user=tokentray", false},
	} {
		err := RefusePassword(tc.url)
		if tc.refused != (err != nil) {
			t.Errorf("%s: %v; want refused %v", tc.url, err, tc.refused)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "PGPASSFILE")) {
			t.Errorf("%s: %v; want a refusal that names PGPASSFILE and holds no password", tc.url, err)
		}
	}
	if err := RefusePassword("host=db 'oops"); err == nil || strings.Contains(err.Error(), "oops") {
		t.Errorf("a broken string: %v", err)
	}
}

func TestKeywordValuePairsReadAsLibpqReadsThem(t *testing.T) {
	got, err := ParseKeywordValue(` host = db.example  application_name='it\'s a b' dbname=x\ y sslmode=''`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"host": "db.example", "application_name": "it's a b", "dbname": "x y", "sslmode": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q; want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d keys: %q", len(got), got)
	}
	for _, bad := range []string{"", "host", "host=a b", "=x"} {
		if _, err := ParseKeywordValue(bad); err == nil {
			t.Errorf("%q read without an error", bad)
		}
	}
}
