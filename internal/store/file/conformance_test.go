package file

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/storetest"
	"github.com/tokentray/tokentray/internal/tstest/tempdir"
)

func TestTheFileStoreKeepsTheStoreContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"plain", nil}, {"sealed", bytes.Repeat([]byte{7}, 32)}} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) auth.Store {
				s, err := Open(filepath.Join(tempdir.New(t), "state", "tokentray"), tc.key)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}
