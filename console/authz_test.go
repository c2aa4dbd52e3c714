package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
)

// Issue 15, item 6: the Things and Policies pages, a certificate's things
// and policies, and the policy simulator.

const devicePolicy = `{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/things/${iot:Connection.Thing.ThingName}/*"},
{"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/things/*/secret"}]}`

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantRedirect sends form to path and checks that it answers 303 to a
// page starting with location (post/redirect/get).
func (b *browser) wantRedirect(path string, form url.Values, location string) {
	b.t.Helper()
	status, loc := b.postStatus(path, form)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, location) {
		b.t.Fatalf("POST %s: %d to %q, want 303 to %s…", path, status, loc, location)
	}
}

func TestThingsPages(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	ctx := context.Background()

	t.Run("ok/empty list", func(t *testing.T) {
		r := b.get("/console/things")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Things", "No things yet.", "Create thing")
	})

	t.Run("ok/create with attributes", func(t *testing.T) {
		b.wantRedirect("/console/create/thing", url.Values{"name": {"thermostat-1"}, "type": {""},
			"attr_key": {"room", "", "floor"}, "attr_value": {"kitchen", "", "2"}}, "/console/things/thermostat-1")
		r := b.get("/console/things/thermostat-1")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Thing thermostat-1 was created.", "arn:aws:iot:"+testRegion+":111111111111:thing/thermostat-1")
		if !strings.Contains(r.Body, `value="room"`) || !strings.Contains(r.Body, `value="kitchen"`) {
			t.Errorf("the attributes form does not hold room=kitchen")
		}
		th, err := e.Reg.DescribeThing(ctx, scope, "thermostat-1")
		mustDo(t, err)
		if th.Attributes["room"] != "kitchen" || th.Attributes["floor"] != "2" || len(th.Attributes) != 2 {
			t.Errorf("attributes %v", th.Attributes)
		}
	})

	t.Run("fail/create refused, form kept", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			form url.Values
			want string
		}{
			{"bad name", url.Values{"name": {"bad name!"}}, "Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+"},
			{"four attributes without a type", url.Values{"name": {"t4"}, "attr_key": {"a", "b", "c", "d"}, "attr_value": {"1", "2", "3", "4"}}, "at most 3 attributes"},
			{"value without a name", url.Values{"name": {"t5"}, "attr_key": {""}, "attr_value": {"orphan"}}, "has no attribute name"},
			{"unknown type", url.Values{"name": {"t6"}, "type": {"bulb"}}, "There is no thing type bulb"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b.wantRedirect("/console/create/thing", tc.form, "/console/create/thing?form=")
				status, loc := b.postStatus("/console/create/thing", tc.form)
				if status != http.StatusSeeOther {
					t.Fatal(status)
				}
				r := b.get(loc)
				wantStatus(t, r, http.StatusBadRequest)
				wantText(t, r, tc.want)
				if !strings.Contains(r.Body, `value="`+tc.form.Get("name")+`"`) {
					t.Errorf("the refused form lost the name")
				}
			})
		}
	})

	t.Run("fail/stale attribute edit refused", func(t *testing.T) {
		page := b.get("/console/things/thermostat-1")
		m := regexp.MustCompile(`name="expected_version" value="(\d+)"`).FindStringSubmatch(page.Body)
		if m == nil {
			t.Fatal("no expected_version on the thing's page")
		}
		// Someone else changes the thing meanwhile.
		mustDo(t, e.Reg.UpdateThing(ctx, scope, fleetcert.UpdateThingInput{Name: "thermostat-1",
			AttributePayload: &fleetcert.AttributePayload{Attributes: map[string]string{"room": "hall"}, Merge: true}}))
		b.wantRedirect("/console/things/thermostat-1/attributes", url.Values{"expected_version": {m[1]},
			"attr_key": {"room"}, "attr_value": {"attic"}}, "/console/things/thermostat-1")
		r := b.get("/console/things/thermostat-1")
		wantText(t, r, "was changed by someone else after you opened this page, so your edit was not saved")
		th, _ := e.Reg.DescribeThing(ctx, scope, "thermostat-1")
		if th.Attributes["room"] != "hall" {
			t.Errorf("stale edit saved: %v", th.Attributes)
		}
		// With the current version the edit is saved, and a cleared row
		// removes its attribute.
		m = regexp.MustCompile(`name="expected_version" value="(\d+)"`).FindStringSubmatch(r.Body)
		b.wantRedirect("/console/things/thermostat-1/attributes", url.Values{"expected_version": {m[1]},
			"attr_key": {"room", ""}, "attr_value": {"attic", ""}}, "/console/things/thermostat-1")
		wantText(t, b.get("/console/things/thermostat-1"), "The attributes of thing thermostat-1 were saved.")
		th, _ = e.Reg.DescribeThing(ctx, scope, "thermostat-1")
		if len(th.Attributes) != 1 || th.Attributes["room"] != "attic" {
			t.Errorf("after the edit: %v", th.Attributes)
		}
	})

	c := register(t, e, scope, fleetcert.StatusActive)
	t.Run("ok/attach a certificate by id", func(t *testing.T) {
		b.wantRedirect("/console/things/thermostat-1/principals", url.Values{"certificate": {strings.ToUpper(c.ID)}}, "/console/things/thermostat-1")
		r := b.get("/console/things/thermostat-1")
		wantText(t, r, "Certificate "+c.ID[:10]+"… is attached to thing thermostat-1.", "Non-exclusive")
		b.wantRedirect("/console/things/thermostat-1/principals", url.Values{"certificate": {"nope"}}, "/console/things/thermostat-1")
		wantText(t, b.get("/console/things/thermostat-1"), "Give the certificate's id: 64 hex digits")
		b.wantRedirect("/console/things/thermostat-1/principals", url.Values{"certificate": {strings.Repeat("a", 64)}}, "/console/things/thermostat-1")
		wantText(t, b.get("/console/things/thermostat-1"), "was not attached to thing thermostat-1", "does not exist")
	})

	t.Run("fail/delete refused while a certificate is attached", func(t *testing.T) {
		status, loc := b.postStatus("/console/things/thermostat-1/delete", url.Values{})
		if status != http.StatusSeeOther {
			t.Fatal(status)
		}
		wantText(t, b.get(loc), "Thing thermostat-1 cannot be deleted while certificates are attached to it")
		r := b.get("/console/things/thermostat-1/delete")
		wantText(t, r, "Thing thermostat-1 cannot be deleted while certificates are attached to it")
		if _, err := e.Reg.DescribeThing(ctx, scope, "thermostat-1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ok/detach with confirmation, then delete", func(t *testing.T) {
		r := b.get("/console/things/thermostat-1/principals/" + c.ID + "/detach")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Detach certificate "+c.ID[:10]+"… from thing thermostat-1?")
		b.wantRedirect("/console/things/thermostat-1/principals/"+c.ID+"/detach", url.Values{}, "/console/things/thermostat-1")
		wantText(t, b.get("/console/things/thermostat-1"), "was detached from thing thermostat-1", "No certificate is attached to this thing.")
		r = b.get("/console/things/thermostat-1/delete")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Delete thing thermostat-1?")
		m := regexp.MustCompile(`name="expected_version" value="(\d+)"`).FindStringSubmatch(r.Body)
		b.wantRedirect("/console/things/thermostat-1/delete", url.Values{"expected_version": {m[1]}, "return": {"/console/things"}}, "/console/things")
		wantText(t, b.get("/console/things"), "Thing thermostat-1 was deleted.")
		if _, err := e.Reg.DescribeThing(ctx, scope, "thermostat-1"); fleetcert.ErrorCode(err) != fleetcert.EResourceNotFound {
			t.Errorf("after delete: %v", err)
		}
	})

	t.Run("ok/pages and search", func(t *testing.T) {
		for i := range 27 {
			_, err := e.Reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: fmt.Sprintf("pump-%02d", i)})
			mustDo(t, err)
		}
		_, err := e.Reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "valve-1"})
		mustDo(t, err)
		r := b.get("/console/things")
		if n := strings.Count(r.Body, `<tr id="t-`); n != 25 {
			t.Fatalf("first page has %d rows", n)
		}
		next := regexp.MustCompile(`href="([^"]*)" rel="next"`).FindStringSubmatch(r.Body)
		if next == nil {
			t.Fatal("no Next link")
		}
		r2 := b.get("/console/things" + unescapeHref(next[1]))
		if n := strings.Count(r2.Body, `<tr id="t-`); n != 3 || !strings.Contains(r2.Body, "valve-1") {
			t.Errorf("second page: %d rows\n%s", n, text(r2.Body))
		}
		prev := regexp.MustCompile(`href="([^"]*)" rel="prev"`).FindStringSubmatch(r2.Body)
		if prev == nil {
			t.Fatal("no Previous link")
		}
		if r3 := b.get("/console/things" + unescapeHref(prev[1])); !strings.Contains(r3.Body, "pump-00") {
			t.Errorf("Previous does not lead to the first page")
		}
		r = b.get("/console/things?q=valve")
		if n := strings.Count(r.Body, `<tr id="t-`); n != 1 || !strings.Contains(r.Body, "valve-1") {
			t.Errorf("search valve: %d rows", n)
		}
		wantText(t, b.get("/console/things?q=zzz"), "No thing's name starts with “zzz”.")
	})

	t.Run("fail/another account's thing is not found", func(t *testing.T) {
		other, _ := e.signedIn("222222222222")
		r := other.get("/console/things/pump-01")
		wantStatus(t, r, http.StatusNotFound)
		wantText(t, r, "Thing pump-01 cannot be found.")
		if r := other.get("/console/things"); strings.Contains(r.Body, "pump-01") {
			t.Errorf("another account lists pump-01")
		}
		other.wantRedirect("/console/things/pump-01/attributes", url.Values{"attr_key": {"x"}, "attr_value": {"1"}}, "/console/things")
		other.wantRedirect("/console/things/pump-01/delete", url.Values{}, "/console/things")
		th, err := e.Reg.DescribeThing(ctx, scope, "pump-01")
		if err != nil || len(th.Attributes) != 0 {
			t.Errorf("another account changed pump-01: %v %v", th, err)
		}
	})

	t.Run("fail/a name that cannot be a thing's", func(t *testing.T) {
		wantStatus(t, b.get("/console/things/"+url.PathEscape("no spaces")), http.StatusNotFound)
	})
}

func TestPoliciesPages(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	ctx := context.Background()

	t.Run("ok/empty list and the create form", func(t *testing.T) {
		wantText(t, b.get("/console/policies"), "No policies yet.")
		r := b.get("/console/create/policy")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Policy document (JSON)", `"Version": "2012-10-17"`)
	})

	t.Run("fail/malformed document shows AWS's message", func(t *testing.T) {
		status, loc := b.postStatus("/console/create/policy", url.Values{"name": {"broken"}, "document": {`{"Version":"2012-10-17"`}})
		if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/create/policy?form=") {
			t.Fatalf("%d %s", status, loc)
		}
		r := b.get(loc)
		wantStatus(t, r, http.StatusBadRequest)
		wantText(t, r, "The policy document was refused: Syntax errors in policy.")
		if !strings.Contains(r.Body, `value="broken"`) || !strings.Contains(r.Body, `{&#34;Version&#34;:&#34;2012-10-17&#34;</textarea>`) {
			t.Errorf("the refused form lost its input")
		}
	})

	const name = "device+policy@v1" // + and @ are valid in a policy name
	path := "/console/policies/" + url.PathEscape(name)
	t.Run("ok/create, view highlighted", func(t *testing.T) {
		b.wantRedirect("/console/create/policy", url.Values{"name": {name}, "document": {devicePolicy}}, path)
		r := b.get(path)
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Policy "+name+" was created.", "Version 1", "Default (in effect)", "attached to no certificate")
		for _, want := range []string{`<span class="j-key">&#34;Effect&#34;</span>`, `<span class="j-str">&#34;Allow&#34;</span>`, `<span class="j-punct">`} {
			if !strings.Contains(r.Body, want) {
				t.Errorf("the document is not highlighted: no %s", want)
			}
		}
		if !strings.Contains(r.Body, "{</span>\n  <span class=\"j-key\">&#34;Version&#34;</span><span class=\"j-punct\">:</span> <span class=\"j-str\">&#34;2012-10-17&#34;</span>") {
			t.Errorf("the document is not pretty-printed")
		}
		wantText(t, b.get("/console/policies"), name)
	})

	t.Run("ok/new version, set default, delete a version", func(t *testing.T) {
		b.wantRedirect(path+"/versions", url.Values{"document": {devicePolicy}}, path+"?version=2")
		p, err := e.Reg.GetPolicy(ctx, scope, name)
		mustDo(t, err)
		if p.DefaultVersion().ID != "1" {
			t.Errorf("a version created without Set as default became the default")
		}
		b.wantRedirect(path+"/versions", url.Values{"document": {devicePolicy}, "default": {"1"}}, path+"?version=3")
		wantText(t, b.get(path+"?version=3"), "Version 3 of policy "+name+" was created and is now the default", "Version 3 (default)")
		b.wantRedirect(path+"/versions/1/default", url.Values{}, path+"?version=1")
		wantText(t, b.get(path+"?version=1"), "Version 1 is now the default version of policy "+name)
		// The default version cannot be deleted.
		status, loc := b.postStatus(path+"/versions/1/delete", url.Values{})
		if status != http.StatusSeeOther {
			t.Fatal(status)
		}
		wantText(t, b.get(loc), "Cannot delete the default version of a policy")
		wantText(t, b.get(path+"/versions/1/delete"), "is the default version of policy "+name+" and cannot be deleted")
		r := b.get(path + "/versions/2/delete")
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Delete version 2 of policy "+name+"?")
		b.wantRedirect(path+"/versions/2/delete", url.Values{}, path)
		wantText(t, b.get(path), "Version 2 of policy "+name+" was deleted.")
		wantStatus(t, b.get(path+"?version=2"), http.StatusNotFound)
		b.wantRedirect(path+"/versions", url.Values{"document": {`{"Version":"2012-10-17","Statement":[]}`}}, path)
		wantText(t, b.get(path), "No new version of policy "+name+" was created.", "The policy must contain at least one statement.")
	})

	c := register(t, e, scope, fleetcert.StatusActive)
	t.Run("fail/delete refused while attached or with other versions", func(t *testing.T) {
		wantText(t, b.get(path+"/delete"), "has versions besides the default one and cannot be deleted")
		mustDo(t, e.Reg.DeletePolicyVersion(ctx, scope, name, "3"))
		mustDo(t, e.Reg.AttachPolicy(ctx, scope, name, c.ARN()))
		r := b.get(path)
		wantText(t, r, "Certificate "+c.ID[:10])
		wantText(t, b.get(path+"/delete"), "is attached to certificates or thing groups and cannot be deleted")
		b.wantRedirect(path+"/delete", url.Values{}, path)
		wantText(t, b.get(path), "The policy cannot be deleted as the policy is attached to one or more principals")
	})

	t.Run("fail/another account's policy is not found", func(t *testing.T) {
		other, _ := e.signedIn("222222222222")
		r := other.get(path)
		wantStatus(t, r, http.StatusNotFound)
		other.wantRedirect(path+"/versions", url.Values{"document": {devicePolicy}}, path)
		other.wantRedirect(path+"/delete", url.Values{}, path)
		wantText(t, other.get(path+"/delete"), "Not found")
		p, err := e.Reg.GetPolicy(ctx, scope, name)
		if err != nil || len(p.Versions) != 1 {
			t.Errorf("another account changed the policy: %v", err)
		}
	})

	t.Run("ok/detach from the policy's page, then delete", func(t *testing.T) {
		r := b.get(detachPath(c.ID, name) + "?return=" + url.QueryEscape(path))
		wantStatus(t, r, http.StatusOK)
		wantText(t, r, "Detach policy "+name+" from certificate "+c.ID[:10])
		b.wantRedirect(detachPath(c.ID, name), url.Values{"return": {path}}, path)
		wantText(t, b.get(path), "Policy "+name+" was detached from certificate "+c.ID[:10])
		wantText(t, b.get(path+"/delete"), "Delete policy "+name+"?")
		b.wantRedirect(path+"/delete", url.Values{"return": {"/console/policies"}}, "/console/policies")
		wantText(t, b.get("/console/policies"), "Policy "+name+" was deleted.")
	})
}

func detachPath(id, policy string) string {
	return "/console/certificates/" + id + "/policies/" + url.PathEscape(policy) + "/detach"
}

func TestCertificateThingsAndPolicies(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	ctx := context.Background()
	c := register(t, e, scope, fleetcert.StatusActive)
	path := "/console/certificates/" + c.ID

	r := b.get(path)
	wantText(t, r, "Things", "This certificate is attached to no thing.", "No policy is attached to this certificate", "Create a policy")
	noText(t, r, "Attach policy")

	_, err := e.Reg.CreatePolicy(ctx, scope, "device", devicePolicy, nil)
	mustDo(t, err)
	_, err = e.Reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "pump-7"})
	mustDo(t, err)
	r = b.get(path)
	if !strings.Contains(r.Body, `<option value="device">device</option>`) {
		t.Errorf("the attach form does not offer policy device")
	}

	b.wantRedirect(path+"/policies", url.Values{"policy": {"device"}}, path)
	wantText(t, b.get(path), "Policy device is attached to certificate "+c.ID[:10])
	b.wantRedirect(path+"/policies", url.Values{"policy": {"missing"}}, path)
	wantText(t, b.get(path), "Policy missing was not attached to certificate")
	b.wantRedirect(path+"/things", url.Values{"thing": {"pump-7"}}, path)
	r = b.get(path)
	wantText(t, r, "Certificate "+c.ID[:10]+"… is attached to thing pump-7.", "pump-7", "device")
	b.wantRedirect(path+"/things", url.Values{"thing": {"no-such-thing"}}, path)
	wantText(t, b.get(path), "was not attached to thing no-such-thing", "Thing no-such-thing cannot be found.")

	things, err := e.Reg.ListPrincipalThings(ctx, scope, c.ARN(), "", fleetcert.RegistryListOptions{})
	mustDo(t, err)
	if len(things.Principals) != 1 || things.Principals[0].ThingName != "pump-7" {
		t.Errorf("things of the certificate: %+v", things.Principals)
	}

	// Detach both, each through its confirmation page, back to the
	// certificate.
	r = b.get(detachPath(c.ID, "device"))
	wantText(t, r, "Detach policy device from certificate")
	b.wantRedirect(detachPath(c.ID, "device"), url.Values{"return": {path}}, path)
	wantText(t, b.get(path), "Policy device was detached from certificate")
	r = b.get("/console/things/pump-7/principals/" + c.ID + "/detach?return=" + url.QueryEscape(path))
	wantText(t, r, "Detach certificate")
	b.wantRedirect("/console/things/pump-7/principals/"+c.ID+"/detach", url.Values{"return": {path}}, path)
	wantText(t, b.get(path), "was detached from thing pump-7", "This certificate is attached to no thing.")

	// Another account cannot attach to this certificate.
	other, _ := e.signedIn("222222222222")
	other.wantRedirect(path+"/policies", url.Values{"policy": {"device"}}, path)
	wantText(t, other.get("/console/things"), "No things yet.")
	p, err := e.Reg.ListAttachedPolicies(ctx, scope, c.ARN(), false, fleetcert.ListOptions{})
	mustDo(t, err)
	if len(p.Policies) != 0 {
		t.Errorf("policies attached from another account: %v", p.Policies)
	}
}

func TestPolicySimulator(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	ctx := context.Background()
	c := register(t, e, scope, fleetcert.StatusActive)
	_, err := e.Reg.CreatePolicy(ctx, scope, "device", devicePolicy, nil)
	mustDo(t, err)
	_, err = e.Reg.CreateThing(ctx, scope, fleetcert.CreateThingInput{Name: "pump-7"})
	mustDo(t, err)
	mustDo(t, e.Reg.AttachThingPrincipal(ctx, scope, "pump-7", c.ARN(), ""))

	sim := func(action, client, resource string) response {
		return b.get("/console/policy-simulator?" + url.Values{"run": {"1"}, "certificate": {c.ID}, "client": {client}, "action": {action}, "resource": {resource}}.Encode())
	}
	r := sim("CONNECT", "pump-7", "")
	wantText(t, r, "Denied implicitly", "no policy applies to this certificate")

	mustDo(t, e.Reg.AttachPolicy(ctx, scope, "device", c.ARN()))
	for _, tc := range []struct {
		name, action, client, resource string
		want                           []string
	}{
		{"ok/connect as the thing", "CONNECT", "pump-7", "", []string{"Allowed", "client/pump-7 is allowed by device"}},
		{"ok/connect as another client", "CONNECT", "pump-8", "", []string{"Denied implicitly", "no policy allows it (evaluated: device"}},
		{"ok/publish under its name", "PUBLISH", "pump-7", "things/pump-7/temperature", []string{"Allowed", "topic/things/pump-7/temperature"}},
		{"ok/publish denied explicitly", "PUBLISH", "pump-7", "things/pump-7/secret", []string{"Denied explicitly", "is denied by a Deny statement of device"}},
		{"ok/subscribe allowed by nothing", "SUBSCRIBE", "pump-7", "things/#", []string{"Denied implicitly", "topicfilter/things/#"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sim(tc.action, tc.client, tc.resource)
			wantStatus(t, r, http.StatusOK)
			wantText(t, r, tc.want...)
		})
	}
	for _, tc := range []struct {
		name string
		q    url.Values
		want string
	}{
		{"fail/no certificate", url.Values{"run": {"1"}, "action": {"CONNECT"}, "client": {"x"}}, "Give the certificate's id"},
		{"fail/unknown certificate", url.Values{"run": {"1"}, "certificate": {strings.Repeat("b", 64)}, "action": {"CONNECT"}, "client": {"x"}}, "does not exist in this account and Region"},
		{"fail/no topic", url.Values{"run": {"1"}, "certificate": {c.ID}, "action": {"PUBLISH"}}, "Give the topic to test."},
		{"fail/unknown action", url.Values{"run": {"1"}, "certificate": {c.ID}, "action": {"DELETE"}, "resource": {"x"}}, "Choose an action from the list."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.get("/console/policy-simulator?" + tc.q.Encode())
			wantStatus(t, r, http.StatusBadRequest)
			wantText(t, r, tc.want)
		})
	}
	// Another account's certificate is not found.
	other, _ := e.signedIn("222222222222")
	r = other.get("/console/policy-simulator?" + url.Values{"run": {"1"}, "certificate": {c.ID}, "client": {"pump-7"}, "action": {"CONNECT"}}.Encode())
	wantStatus(t, r, http.StatusBadRequest)
	wantText(t, r, "does not exist in this account and Region")
	// The form alone, prefilled from the certificate's page.
	r = b.get("/console/policy-simulator?certificate=" + c.ID)
	wantStatus(t, r, http.StatusOK)
	noText(t, r, "Allowed", "Denied")
	if !strings.Contains(r.Body, `value="`+c.ID+`"`) {
		t.Errorf("the certificate is not filled in")
	}
}

// TestAuthzFormsNeedCSRF: every new form is refused without the session's
// token.
func TestAuthzFormsNeedCSRF(t *testing.T) {
	e := newEnv(t)
	b, scope := e.signedIn("111111111111")
	c := register(t, e, scope, fleetcert.StatusActive)
	for _, path := range []string{
		"/console/create/thing", "/console/create/policy",
		"/console/things/x/attributes", "/console/things/x/principals", "/console/things/x/delete",
		"/console/things/x/principals/" + c.ID + "/detach",
		"/console/policies/p/versions", "/console/policies/p/versions/1/default", "/console/policies/p/versions/1/delete", "/console/policies/p/delete",
		"/console/certificates/" + c.ID + "/things", "/console/certificates/" + c.ID + "/policies",
		"/console/certificates/" + c.ID + "/policies/p/detach",
	} {
		if r := b.post(path, url.Values{"csrf": {"forged"}, "name": {"x"}}); r.Status != http.StatusForbidden {
			t.Errorf("POST %s with a forged token: %d", path, r.Status)
		}
	}
}
