package smstest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/sms/smstest"
)

// post sends a raw request, as a client of Twilio's API would.
func post(t *testing.T, srv *smstest.Server, method, path, user, pass string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	u, _ := url.Parse(srv.URL())
	u.User, u.RawQuery, u.Path = nil, "", path
	req, _ := http.NewRequest(method, u.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	json.Unmarshal(b, &body)
	return resp.StatusCode, resp.Header, body
}

func TestServer(t *testing.T) {
	srv := smstest.NewServer(t)
	path := "/2010-04-01/Accounts/" + srv.SID + "/Messages.json"
	ok := url.Values{"To": {"+447400123456"}, "From": {smstest.From}, "Body": {"hi"}}
	for _, tt := range []struct {
		name, method, path, user, pass string
		form                           url.Values
		status, code                   int
	}{
		{"ErrPath", "POST", "/2010-04-01/Accounts/" + srv.SID + "/Calls.json", srv.SID, srv.Token, ok, 404, 20404},
		{"ErrOtherAccount", "POST", "/2010-04-01/Accounts/AC0/Messages.json", "AC0", srv.Token, ok, 404, 20404},
		{"ErrMethod", "GET", path, srv.SID, srv.Token, nil, 405, 20004},
		{"ErrNoAuth", "POST", path, "", "", ok, 401, 20003},
		{"ErrWrongToken", "POST", path, srv.SID, "nope", ok, 401, 20003},
		{"ErrNoTo", "POST", path, srv.SID, srv.Token, url.Values{"From": {smstest.From}, "Body": {"hi"}}, 400, 21604},
		{"ErrBadTo", "POST", path, srv.SID, srv.Token, url.Values{"To": {"07400123456"}, "From": {smstest.From}, "Body": {"hi"}}, 400, 21211},
		{"ErrNoFrom", "POST", path, srv.SID, srv.Token, url.Values{"To": {"+447400123456"}, "Body": {"hi"}}, 400, 21603},
		{"ErrNoBody", "POST", path, srv.SID, srv.Token, url.Values{"To": {"+447400123456"}, "From": {smstest.From}}, 400, 21602},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := post(t, srv, tt.method, tt.path, tt.user, tt.pass, tt.form)
			if status != tt.status || body["code"] != float64(tt.code) || body["status"] != float64(tt.status) || body["message"] == "" {
				t.Errorf("%s %s: %d %v, want %d with code %d", tt.method, tt.path, status, body, tt.status, tt.code)
			}
		})
	}
	if got := srv.Messages(); len(got) != 0 {
		t.Fatalf("kept %v after refusals", got)
	}

	srv.FailNext(1, smstest.Failure{Status: 500, Code: 20500, Message: "first"})
	srv.FailNext(2, smstest.Failure{Status: 429, Code: 20429, Message: "slow down", RetryAfter: "12"})
	for i, want := range []int{500, 429, 429, 201} {
		status, header, body := post(t, srv, "POST", path, srv.SID, srv.Token, ok)
		if status != want {
			t.Fatalf("request %d: %d %v, want %d", i, status, body, want)
		}
		if want == 429 && header.Get("Retry-After") != "12" {
			t.Errorf("request %d: Retry-After %q", i, header.Get("Retry-After"))
		}
		if want == 201 && (body["sid"] != srv.Messages()[0].SID || body["status"] != "queued" || body["to"] != "+447400123456") {
			t.Errorf("answer %v, kept %+v", body, srv.Messages())
		}
	}
	if got := srv.Requests(); got != 13 {
		t.Errorf("Requests() = %d, want 13", got)
	}
	msgs := srv.Messages()
	msgs[0].Body = "changed"
	if srv.Messages()[0].Body != "hi" {
		t.Error("Messages() shares its slice")
	}
}
