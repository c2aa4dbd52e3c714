package main_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/chromedp/chromedp"

	"github.com/fleetcert/fleetcert/internal/testpki"
)

// TestConsoleThingsPoliciesInChromium (issue 15, item 6): in headless
// Chromium against the real binary, at a desktop's width and a phone's,
// create a policy and a thing, attach both to a certificate from its page
// and ask the policy simulator whether a device may connect; every page
// fits the window.
func TestConsoleThingsPoliciesInChromium(t *testing.T) {
	ctx := newBrowser(t)
	s := startServer(t)
	api := s.defaultClient()
	base := "http://" + s.addr
	c := &chrome{t: t, ctx: ctx, shots: screenshotDir(t)}

	leaf := testpki.New(t, testpki.Options{CommonName: "greenhouse-sensor"})
	out, err := api.RegisterCertificateWithoutCA(context.Background(), &iot.RegisterCertificateWithoutCAInput{
		CertificatePem: aws.String(leaf.PEM), Status: "ACTIVE"})
	if err != nil {
		t.Fatal(err)
	}
	certID := *out.CertificateId

	c.run("sign in",
		chromedp.Navigate(base+"/console/signin"),
		chromedp.WaitVisible(chromedp.CSS("#access_key_id")),
		chromedp.SendKeys(chromedp.CSS("#access_key_id"), testKeyID),
		chromedp.SendKeys(chromedp.CSS("#secret_access_key"), testSecret),
		chromedp.SetValue(chromedp.CSS("#region"), testRegion),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		waitText("h1", "Certificates"),
	)

	for _, width := range []int64{1280, 390} {
		t.Run(fmt.Sprint(width, "px"), func(t *testing.T) {
			c := &chrome{t: t, ctx: ctx, shots: c.shots}
			suffix := map[int64]string{1280: "", 390: "-phone"}[width]
			policy, thing := fmt.Sprint("greenhouse-", width), fmt.Sprint("sensor-", width)
			// fits checks that nothing is wider than the window, and at
			// 390 px that the five sections of the nav keep to one row.
			fits := func(what string) {
				t.Helper()
				if w := eval[float64](c, `document.documentElement.scrollWidth`); w > float64(width) {
					t.Errorf("%s is %v px wide in a %d px window", what, w, width)
				}
				if h := eval[float64](c, `document.querySelector(".sidenav").getBoundingClientRect().height`); width == 390 && h > 60 {
					t.Errorf("%s: the nav is %v px tall", what, h)
				}
			}
			c.run("viewport", chromedp.EmulateViewport(width, 844, chromedp.EmulateScale(1)))

			c.run("create a policy",
				chromedp.Navigate(base+"/console/certificates"),
				waitText("h1", "Certificates"),
				chromedp.Click(chromedp.CSS(`.sidenav a[href="/console/policies"]`)),
				waitText("h1", "Policies"),
				chromedp.Click(chromedp.CSS(`a[href="/console/create/policy"].btn-primary`)),
				waitText("h1", "Create policy"),
				chromedp.SendKeys(chromedp.CSS("#name"), policy),
			)
			fits("the create policy form")
			c.run("send the policy",
				chromedp.Click(chromedp.CSS(`form[action="/console/create/policy"] button[type="submit"]`)),
				waitText(".alert-success", "Policy "+policy+" was created."),
				waitText("#document .j-key", `"Statement"`),
			)
			fits("the policy's page")
			c.run("policy screenshot", c.screenshot("policy"+suffix+".png"))

			c.run("create a thing",
				chromedp.Click(chromedp.CSS(`.sidenav a[href="/console/things"]`)),
				waitText("h1", "Things"),
				chromedp.Click(chromedp.CSS(`a[href="/console/create/thing"].btn-primary`)),
				waitText("h1", "Create thing"),
				chromedp.SendKeys(chromedp.CSS("#name"), thing),
				chromedp.SendKeys(chromedp.CSS("#attr-key-0"), "greenhouse"),
				chromedp.SendKeys(chromedp.CSS("#attr-value-0"), "north"),
			)
			fits("the create thing form")
			c.run("send the thing",
				chromedp.Click(chromedp.CSS(`form[action="/console/create/thing"] button[type="submit"]`)),
				waitText(".alert-success", "Thing "+thing+" was created."),
			)
			if v := eval[string](c, `document.getElementById("attr-value-0").value`); v != "north" {
				t.Errorf("the thing's attribute greenhouse is %q", v)
			}
			fits("the thing's page")
			c.run("thing screenshot", c.screenshot("thing"+suffix+".png"))
			c.run("things list", chromedp.Navigate(base+"/console/things"), waitText("table.data", thing))
			fits("the things list")
			c.run("things screenshot", c.screenshot("things"+suffix+".png"))

			c.run("attach the policy and the thing to the certificate",
				chromedp.Navigate(base+"/console/certificates/"+certID),
				waitText("#h-policies", "Policies"),
				chromedp.SetValue(chromedp.CSS("#attach-policy"), policy),
				chromedp.Click(chromedp.CSS(`form[action$="/policies"] button[type="submit"]`)),
				waitText(".alert-success", "Policy "+policy+" is attached to certificate"),
				chromedp.SendKeys(chromedp.CSS("#attach-thing"), thing),
				chromedp.Click(chromedp.CSS(`form[action$="/things"] button[type="submit"]`)),
				waitText(".alert-success", "is attached to thing "+thing),
				waitText("ul.attached", thing),
				waitText("ul.attached", policy),
			)
			fits("the certificate's page")
			c.run("certificate screenshot", c.screenshot("certificate-attachments"+suffix+".png"))

			c.run("simulate a connect",
				chromedp.Click(chromedp.CSS(`a[href^="/console/policy-simulator?certificate="]`)),
				waitText("h1", "Policy simulator"),
				chromedp.SendKeys(chromedp.CSS("#sim-client"), thing),
				chromedp.SetValue(chromedp.CSS("#sim-action"), "CONNECT"),
				chromedp.Click(chromedp.CSS(`form[action="/console/policy-simulator"] button[type="submit"]`)),
				waitText("#h-result", "Allowed"),
				waitText("#result", "allowed by "),
			)
			fits("the simulator's answer")
			c.run("simulator screenshot", c.screenshot("policy-simulator"+suffix+".png"))
			c.run("simulate a publish elsewhere",
				chromedp.SetValue(chromedp.CSS("#sim-action"), "PUBLISH"),
				chromedp.SetValue(chromedp.CSS("#sim-resource"), "things/someone-else/data"),
				chromedp.Click(chromedp.CSS(`form[action="/console/policy-simulator"] button[type="submit"]`)),
				waitText("#h-result", "Denied implicitly"),
			)
			c.run("policies list", chromedp.Navigate(base+"/console/policies"), waitText("table.data", policy))
			fits("the policies list")
			c.run("policies screenshot", c.screenshot("policies"+suffix+".png"))
		})
	}

	// What the pages did is what the API sees.
	things, err := api.ListPrincipalThings(context.Background(), &iot.ListPrincipalThingsInput{Principal: aws.String(
		"arn:aws:iot:" + testRegion + ":" + testAccount + ":cert/" + certID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(things.Things) != 2 {
		t.Errorf("the certificate is attached to %v", things.Things)
	}
}
