package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/emutest"
)

func clientFor(t *testing.T, em *emulator.Emulator, o graph.Options) *graph.Client {
	t.Helper()
	o.BaseURL, o.HTTPClient = em.GraphURL(), em.HTTPClient()
	c, err := graph.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func graphToken(t *testing.T, em *emulator.Emulator, user string) string {
	t.Helper()
	status, body := emutest.OBO(t, em, emutest.UserToken(t, em, user), "https://graph.microsoft.com/.default")
	if status != 200 {
		t.Fatalf("OBO: %v", body)
	}
	return body["access_token"].(string)
}

func TestTypedCallsAgainstTheEmulator(t *testing.T) {
	em := emutest.Start(t, nil)
	c := clientFor(t, em, graph.Options{})
	tok := graphToken(t, em, "alice")
	ctx := context.Background()
	me, err := c.Me(ctx, tok)
	if err != nil || me.UserPrincipalName != "alice@"+emulator.DefaultTenantDomain || me.JobTitle == "" {
		t.Fatalf("Me: %v %+v", err, me)
	}
	g, in, err := c.MemberOf(ctx, tok, "3C7A1F5B-9D4E-4A0C-88E3-1B5D7F9A4C62")
	if err != nil || !in || g.DisplayName != "Engineering" {
		t.Fatalf("MemberOf: %v %v %+v", err, in, g)
	}
	if _, _, err := c.MemberOf(ctx, tok, "x'; drop"); err == nil {
		t.Fatal("a non-GUID group id reached Graph")
	}
	groups, total, err := c.MyGroups(ctx, tok, "", 3)
	if err != nil || len(groups) != 3 || total != 4 {
		t.Fatalf("MyGroups capped at 3: %v %d of %d", err, len(groups), total)
	}
	// Quotes in user input cannot break out of the OData literal.
	if _, _, err := c.MyGroups(ctx, tok, "O'Brien') or (1 eq 1", 10); err != nil {
		t.Fatalf("prefix with a quote: %v", err)
	}
	f := graph.MessageFilter{Severity: "high", TitleContains: "Exchange"}
	msgs, count, err := c.Messages(ctx, tok, graph.MessageQuery{Filter: f.String(), OrderBy: "lastModifiedDateTime desc", Top: 10, Count: true})
	if err != nil || count == nil || *count != 2 || len(msgs) != 2 || msgs[0].ID != "MC180234" {
		t.Fatalf("Messages: %v %v %+v", err, count, msgs)
	}
	// Paging: page size 5 with Prefer, 12 posts, Max caps what is read.
	all, _, err := c.Messages(ctx, tok, graph.MessageQuery{PageSize: 5, Max: 11})
	if err != nil || len(all) != 11 {
		t.Fatalf("paged messages: %v %d", err, len(all))
	}
	m, err := c.Message(ctx, tok, "MC172851")
	if err != nil || m.Body == nil || !strings.Contains(m.AdminCenterLink(), "MC172851") {
		t.Fatalf("Message: %v %+v", err, m)
	}
	_, _, err = c.Messages(ctx, graphToken(t, em, "bob"), graph.MessageQuery{Top: 1})
	var ge *graph.Error
	if !errors.As(err, &ge) || ge.Status != 403 || ge.Code != "Authorization_RequestDenied" || ge.RequestID == "" {
		t.Fatalf("bob's Message Center call: %v", err)
	}
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	em := emutest.Start(t, nil)
	tok := graphToken(t, em, "alice")
	var statuses []int
	c := clientFor(t, em, graph.Options{OnResponse: func(_ string, s int) { statuses = append(statuses, s) }})
	em.ThrottleNext(emulator.Graph, 2, "0.25")
	start := time.Now()
	if _, err := c.Me(context.Background(), tok); err != nil {
		t.Fatalf("after two 429s: %v", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("retried after %v; Retry-After asked for 2 x 250ms", d)
	}
	if fmt.Sprint(statuses) != "[429 429 200]" {
		t.Fatalf("attempts: %v", statuses)
	}
	// A Retry-After beyond the budget ends the retries at once with the 429.
	em.ThrottleNext(emulator.Graph, 1, "60")
	start = time.Now()
	_, err := c.Me(context.Background(), tok)
	if !graph.IsStatus(err, 429) || time.Since(start) > 5*time.Second {
		t.Fatalf("over budget: %v after %v", err, time.Since(start))
	}
	var ge *graph.Error
	if errors.As(err, &ge) && ge.RetryAfter != 60*time.Second {
		t.Fatalf("RetryAfter %v", ge.RetryAfter)
	}
	em.ResetFaults()
	// An unreachable Graph is ErrUnavailable after the retries.
	em.SetOutage(emulator.Graph, emulator.OutageRefuse, 0)
	_, err = clientFor(t, em, graph.Options{MaxRetries: 1}).Me(context.Background(), tok)
	em.ClearOutage(emulator.Graph)
	if !errors.Is(err, graph.ErrUnavailable) || strings.Contains(err.Error(), tok) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestNextLinkMustStayOnGraph(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"value":[{"id":"1"}],"@odata.nextLink":"https://evil.example/v1.0/steal"}`)
	}))
	defer ts.Close()
	c, err := graph.New(graph.Options{BaseURL: ts.URL, HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = graph.List[graph.Group](context.Background(), c, "tok", graph.Request{Path: "/v1.0/me/memberOf"}, 10)
	if err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("foreign nextLink followed: %v", err)
	}
	if _, err := graph.New(graph.Options{BaseURL: "http://graph.example"}); err == nil {
		t.Fatal("http base URL accepted")
	}
}
