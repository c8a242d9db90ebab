package server

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"scribe/internal/store"
)

// A room an admin moves to another clinician waits for that clinician's acceptance
// (issue 14, item 7); the clinician accepts it on the page, not only through the API.
func TestBrowserClinicianAcceptsAnOfferedRoom(t *testing.T) {
	r := newUIRig(t, 0, nil)
	r.e.user("admin", store.RoleAdmin)
	patel := r.e.user("patel", store.RoleClinician)
	path := "/api/rooms/" + itoa(r.room.ID) + "/clinician"
	if st := r.e.login("admin").do("PUT", path, map[string]any{"clinician_id": patel.ID}, nil); st != 202 {
		t.Fatalf("reassignment request: %d, want 202", st)
	}
	r.login("patel")
	card := `li[data-room="Room 1"]`
	r.run("the offered room", chromedp.WaitVisible(card+` button.accept-room`, chromedp.ByQuery))
	r.wait("the offer explained", nodeText(card)+`.includes("offered you this room")`)
	r.wait("no start form before accepting", `!document.querySelector('`+card+` input[name=consent]')`)
	r.run("accept", chromedp.Click(card+` button.accept-room`, chromedp.ByQuery))
	r.run("the room is theirs: the start form", chromedp.WaitVisible(card+` input[name=consent]`, chromedp.ByQuery))
	got, err := r.e.srv.Store().Room(context.Background(), r.room.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClinicianID != patel.ID || got.PendingClinicianID != 0 {
		t.Errorf("room after accepting: clinician %d, pending %d; want %d, 0", got.ClinicianID, got.PendingClinicianID, patel.ID)
	}
	if ex := r.pageExceptions(); len(ex) > 0 {
		t.Fatalf("the page threw: %q", ex)
	}
}
