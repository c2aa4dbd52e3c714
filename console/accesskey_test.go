package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

// TestDeletedKeyEndsSessions: once an access key is deleted, in any
// process sharing the store, the next request of a session signed in with
// it is sent to the sign-in page; sessions of other keys go on.
func TestDeletedKeyEndsSessions(t *testing.T) {
	e := newEnv(t)
	k := e.key("111111111111")
	b := e.browser()
	if resp := b.signIn(k.ID, k.Secret, testRegion); resp.Status != http.StatusOK {
		t.Fatalf("sign in: %d", resp.Status)
	}
	other, _ := e.signedIn("111111111111")
	csrf := b.csrfToken()
	keyID := k.ID

	// Another process (`fleetcert keys delete`) on the same file.
	db := sqlite.NewDB(e.DB.Path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := fleetcert.NewRegistry(db, nil).DeleteAccessKey(context.Background(), keyID); err != nil {
		t.Fatal(err)
	}

	resp := b.get("/console/certificates")
	if resp.URL.Path != "/console/signin" || !strings.Contains(resp.URL.RawQuery, "next=") {
		t.Fatalf("after delete, the certificates page answered %d at %s", resp.Status, resp.URL)
	}
	post := b.post("/console/certificates", map[string][]string{"csrf": {csrf}})
	if post.Status != http.StatusForbidden {
		t.Fatalf("a form after delete answered %d", post.Status)
	}
	if resp := other.get("/console/certificates"); resp.Status != http.StatusOK || resp.URL.Path != "/console/certificates" {
		t.Fatalf("another key's session: %d at %s", resp.Status, resp.URL)
	}
}
