package export

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
)

func set(n int) *auth.TokenSet {
	return &auth.TokenSet{AccessToken: auth.Secret(strings.Repeat("x", 3000) + string(rune('a'+n%26))), TokenType: "bearer",
		RefreshToken: "rt-never-exported", ObtainedAt: time.Unix(1_800_000_000, 0), Lifetime: 5400 * time.Second}
}

func TestExportHasTheAccessTokenOnlyWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "procore_token.json")
	if err := Write(path, set(0), "https://sandbox.procore.com"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["token_type"] != "bearer" || got["expires_in"] != float64(5400) || got["created_at"] != float64(1_800_000_000) || got["api_base"] != "https://sandbox.procore.com" {
		t.Fatalf("export %v", got)
	}
	if strings.Contains(string(b), "rt-never-exported") || got["refresh_token"] != nil {
		t.Fatal("the refresh token was exported")
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", info.Mode().Perm())
	}
	if err := Write(path, nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("sign-out did not remove the export")
	}
}

// TestReadersNeverSeeHalfAFile reads while 200 writes replace the file.
func TestReadersNeverSeeHalfAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.json")
	if err := Write(path, set(0), ""); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, bad int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			reads++
			var f File
			if err != nil || json.Unmarshal(b, &f) != nil || len(f.AccessToken) != 3001 {
				bad++
			}
		}
	}()
	for i := range 200 {
		if err := Write(path, set(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d of %d reads saw a partial or missing file", bad, reads)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".token.json.*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestMissingDirectorySaysSo(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "no", "such", "t.json"), set(0), "")
	if err == nil || !strings.Contains(err.Error(), "does the directory exist") {
		t.Fatalf("err = %v", err)
	}
}
