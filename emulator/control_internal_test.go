package emulator

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The test controls answer loopback callers only, even when someone binds the emulator wider.
func TestControlsRefuseRemoteCallers(t *testing.T) {
	em, err := Start(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	h := em.loginHandler()
	for _, remote := range []string{"192.0.2.10:5000", "[2001:db8::1]:5000"} {
		req := httptest.NewRequest(http.MethodPost, "/_emulator/keys/rotate", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", remote, rec.Code)
		}
	}
	if n := len(em.SigningKeyIDs()); n != 1 {
		t.Fatalf("a refused call rotated keys: %d keys", n)
	}
	req := httptest.NewRequest(http.MethodPost, "/_emulator/keys/rotate", nil)
	req.RemoteAddr = "127.0.0.1:5000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || len(em.SigningKeyIDs()) != 2 {
		t.Fatalf("loopback rotate: %d, %d keys", rec.Code, len(em.SigningKeyIDs()))
	}
}
