package keyring

import (
	"testing"
	"time"

	"github.com/tokentray/tokentray/auth"
	"github.com/tokentray/tokentray/internal/store/storetest"
)

// The keyring store on an in-memory keyring, with the chunk size of the
// Windows Credential Manager; .ci/test runs the same on the real Secret
// Service (TestTheRealKeyringKeepsTheStoreContract).
func TestTheKeyringStoreKeepsTheStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) auth.Store {
		return &Store{Secrets: &Items{Service: "t", Backend: newMap(), Timeout: time.Second, ChunkSize: 2560}}
	})
}
