package awsapi_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
)

const testPolicyDoc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:111111111111:topic/a/*"}]}`

func policyNamesOf(ps []types.Policy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, aws.ToString(p.PolicyName))
	}
	return out
}

// TestPolicies_SDK drives every policy and version operation and its
// error codes through the real SDK client.
func TestPolicies_SDK(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	client := e.Client(e.KeyA, testRegion)

	created, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(testPolicyDoc),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(created.PolicyArn) != "arn:aws:iot:us-east-1:111111111111:policy/p" || aws.ToString(created.PolicyVersionId) != "1" ||
		aws.ToString(created.PolicyDocument) != testPolicyDoc || aws.ToString(created.PolicyName) != "p" {
		t.Fatalf("created %+v", created)
	}

	t.Run("ok/GetPolicy", func(t *testing.T) {
		out, err := client.GetPolicy(ctx, &iot.GetPolicyInput{PolicyName: aws.String("p")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.DefaultVersionId) != "1" || aws.ToString(out.PolicyDocument) != testPolicyDoc || out.CreationDate == nil ||
			out.LastModifiedDate == nil || aws.ToString(out.GenerationId) == "" || aws.ToString(out.PolicyArn) != aws.ToString(created.PolicyArn) {
			t.Fatalf("got %+v", out)
		}
	})
	t.Run("ok/versions", func(t *testing.T) {
		for i := 2; i <= 5; i++ {
			out, err := client.CreatePolicyVersion(ctx, &iot.CreatePolicyVersionInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(testPolicyDoc), SetAsDefault: i == 4})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.PolicyVersionId) != fmt.Sprint(i) || out.IsDefaultVersion != (i == 4) || aws.ToString(out.PolicyArn) == "" {
				t.Fatalf("version %d: %+v", i, out)
			}
		}
		_, err := client.CreatePolicyVersion(ctx, &iot.CreatePolicyVersionInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(testPolicyDoc)})
		wantAPIError(t, err, "VersionsLimitExceededException", 409)
		var vle *types.VersionsLimitExceededException
		if !errors.As(err, &vle) {
			t.Fatalf("SDK error %T, want *types.VersionsLimitExceededException", err)
		}

		list, err := client.ListPolicyVersions(ctx, &iot.ListPolicyVersionsInput{PolicyName: aws.String("p")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range list.PolicyVersions {
			got = append(got, fmt.Sprint(aws.ToString(v.VersionId), v.IsDefaultVersion))
			if v.CreateDate == nil {
				t.Fatalf("version without createDate: %+v", v)
			}
		}
		if want := []string{"1false", "2false", "3false", "4true", "5false"}; !slices.Equal(got, want) {
			t.Fatalf("versions %v, want %v", got, want)
		}
		v, err := client.GetPolicyVersion(ctx, &iot.GetPolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String("4")})
		if err != nil || !v.IsDefaultVersion || aws.ToString(v.PolicyName) != "p" || aws.ToString(v.PolicyDocument) != testPolicyDoc || v.CreationDate == nil {
			t.Fatalf("version 4: %+v %v", v, err)
		}
		if _, err := client.SetDefaultPolicyVersion(ctx, &iot.SetDefaultPolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String("2")}); err != nil {
			t.Fatal(err)
		}
		_, err = client.DeletePolicyVersion(ctx, &iot.DeletePolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String("2")})
		wantAPIError(t, err, "DeleteConflictException", 409)
		_, err = client.DeletePolicy(ctx, &iot.DeletePolicyInput{PolicyName: aws.String("p")})
		wantAPIError(t, err, "DeleteConflictException", 409)
		for _, id := range []string{"1", "3", "4", "5"} {
			if _, err := client.DeletePolicyVersion(ctx, &iot.DeletePolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = client.GetPolicyVersion(ctx, &iot.GetPolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String("1")})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
	})

	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"fail/CreatePolicy-duplicate", func() error {
			_, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(testPolicyDoc)})
			return err
		}, "ResourceAlreadyExistsException", 409},
		{"fail/CreatePolicy-malformed", func() error {
			_, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("m"), PolicyDocument: aws.String(`{"Statement":`)})
			return err
		}, "MalformedPolicyException", 400},
		{"fail/CreatePolicy-too-long", func() error {
			doc := strings.Replace(testPolicyDoc, "a/*", strings.Repeat("a", 2048), 1)
			_, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("m"), PolicyDocument: aws.String(doc)})
			return err
		}, "MalformedPolicyException", 400},
		{"fail/CreatePolicy-name", func() error {
			_, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("a!b"), PolicyDocument: aws.String(testPolicyDoc)})
			return err
		}, "InvalidRequestException", 400},
		{"fail/CreatePolicyVersion-malformed", func() error {
			_, err := client.CreatePolicyVersion(ctx, &iot.CreatePolicyVersionInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(`[]`)})
			return err
		}, "MalformedPolicyException", 400},
		{"fail/GetPolicy-unknown", func() error {
			_, err := client.GetPolicy(ctx, &iot.GetPolicyInput{PolicyName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/GetPolicyVersion-bad-id", func() error {
			_, err := client.GetPolicyVersion(ctx, &iot.GetPolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String("x")})
			return err
		}, "InvalidRequestException", 400},
		{"fail/SetDefaultPolicyVersion-unknown", func() error {
			_, err := client.SetDefaultPolicyVersion(ctx, &iot.SetDefaultPolicyVersionInput{PolicyName: aws.String("p"), PolicyVersionId: aws.String("9")})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/ListPolicyVersions-unknown", func() error {
			_, err := client.ListPolicyVersions(ctx, &iot.ListPolicyVersionsInput{PolicyName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/DeletePolicy-unknown", func() error {
			_, err := client.DeletePolicy(ctx, &iot.DeletePolicyInput{PolicyName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/ListPolicies-marker", func() error {
			_, err := client.ListPolicies(ctx, &iot.ListPoliciesInput{Marker: aws.String("AAAA")})
			return err
		}, "InvalidRequestException", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantAPIError(t, tt.call(), tt.code, tt.status) })
	}

	t.Run("ok/ListPolicies-pages", func(t *testing.T) {
		for _, n := range []string{"q", "r", "s"} {
			if _, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String(n), PolicyDocument: aws.String(testPolicyDoc)}); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		p := iot.NewListPoliciesPaginator(client, &iot.ListPoliciesInput{PageSize: aws.Int32(2)})
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			names = append(names, policyNamesOf(out.Policies)...)
		}
		if want := []string{"p", "q", "r", "s"}; !slices.Equal(names, want) || pages != 2 {
			t.Fatalf("listed %v in %d pages, want %v in 2", names, pages, want)
		}
	})
	t.Run("ok/DeletePolicy", func(t *testing.T) {
		if _, err := client.DeletePolicy(ctx, &iot.DeletePolicyInput{PolicyName: aws.String("s")}); err != nil {
			t.Fatal(err)
		}
		_, err := client.GetPolicy(ctx, &iot.GetPolicyInput{PolicyName: aws.String("s")})
		wantAPIError(t, err, "ResourceNotFoundException", 404)
	})
}

// TestPolicyAttachments_SDK drives the attachment operations, the
// deprecated principal forms (principal in x-amzn-iot-principal),
// GetEffectivePolicies and TestAuthorization through the real SDK.
func TestPolicyAttachments_SDK(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	client := e.Client(e.KeyA, testRegion)
	certID := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	certARN := fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountA, Region: testRegion}, certID)
	for _, n := range []string{"p", "q"} {
		if _, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String(n), PolicyDocument: aws.String(testPolicyDoc)}); err != nil {
			t.Fatal(err)
		}
	}
	root, err := client.CreateThingGroup(ctx, &iot.CreateThingGroupInput{ThingGroupName: aws.String("root")})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := client.CreateThingGroup(ctx, &iot.CreateThingGroupInput{ThingGroupName: aws.String("leaf"), ParentGroupName: aws.String("root")})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("p"), Target: aws.String(certARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("q"), Target: root.ThingGroupArn}); err != nil {
		t.Fatal(err)
	}

	t.Run("ok/ListTargetsForPolicy", func(t *testing.T) {
		out, err := client.ListTargetsForPolicy(ctx, &iot.ListTargetsForPolicyInput{PolicyName: aws.String("p")})
		if err != nil || !slices.Equal(out.Targets, []string{certARN}) {
			t.Fatalf("targets %+v %v", out, err)
		}
	})
	t.Run("ok/ListAttachedPolicies", func(t *testing.T) {
		for _, tt := range []struct {
			target    string
			recursive bool
			want      []string
		}{
			{certARN, false, []string{"p"}},
			{aws.ToString(leaf.ThingGroupArn), false, nil},
			{aws.ToString(leaf.ThingGroupArn), true, []string{"q"}},
		} {
			out, err := client.ListAttachedPolicies(ctx, &iot.ListAttachedPoliciesInput{Target: aws.String(tt.target), Recursive: tt.recursive})
			if err != nil {
				t.Fatal(err)
			}
			if got := policyNamesOf(out.Policies); !slices.Equal(got, tt.want) {
				t.Fatalf("attached to %s (recursive %v): %v, want %v", tt.target, tt.recursive, got, tt.want)
			}
		}
	})
	t.Run("ok/principal-operations", func(t *testing.T) {
		if _, err := client.AttachPrincipalPolicy(ctx, &iot.AttachPrincipalPolicyInput{PolicyName: aws.String("q"), Principal: aws.String(certARN)}); err != nil {
			t.Fatal(err)
		}
		out, err := client.ListPrincipalPolicies(ctx, &iot.ListPrincipalPoliciesInput{Principal: aws.String(certARN)})
		if err != nil || !slices.Equal(policyNamesOf(out.Policies), []string{"p", "q"}) {
			t.Fatalf("principal policies %+v %v", out, err)
		}
		if _, err := client.DetachPrincipalPolicy(ctx, &iot.DetachPrincipalPolicyInput{PolicyName: aws.String("q"), Principal: aws.String(certARN)}); err != nil {
			t.Fatal(err)
		}
		out, err = client.ListPrincipalPolicies(ctx, &iot.ListPrincipalPoliciesInput{Principal: aws.String(certARN)})
		if err != nil || !slices.Equal(policyNamesOf(out.Policies), []string{"p"}) {
			t.Fatalf("principal policies after detach %+v %v", out, err)
		}
	})
	t.Run("ok/GetEffectivePolicies", func(t *testing.T) {
		if _, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("dev1")}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("dev1"), Principal: aws.String(certARN)}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.AddThingToThingGroup(ctx, &iot.AddThingToThingGroupInput{ThingName: aws.String("dev1"), ThingGroupName: aws.String("leaf")}); err != nil {
			t.Fatal(err)
		}
		out, err := client.GetEffectivePolicies(ctx, &iot.GetEffectivePoliciesInput{Principal: aws.String(certARN), ThingName: aws.String("dev1")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range out.EffectivePolicies {
			got = append(got, aws.ToString(p.PolicyName))
			if aws.ToString(p.PolicyDocument) != testPolicyDoc || aws.ToString(p.PolicyArn) == "" {
				t.Fatalf("effective policy %+v", p)
			}
		}
		if !slices.Equal(got, []string{"p", "q"}) {
			t.Fatalf("effective %v, want the certificate's p and the group's q", got)
		}
	})
	t.Run("ok/TestAuthorization", func(t *testing.T) {
		out, err := client.TestAuthorization(ctx, &iot.TestAuthorizationInput{
			Principal: aws.String(certARN), ClientId: aws.String("dev1"),
			AuthInfos: []types.AuthInfo{
				{ActionType: types.ActionTypePublish, Resources: []string{"arn:aws:iot:us-east-1:111111111111:topic/a/b"}},
				{ActionType: types.ActionTypeSubscribe, Resources: []string{"arn:aws:iot:us-east-1:111111111111:topicfilter/a/b"}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.AuthResults) != 2 {
			t.Fatalf("results %+v", out.AuthResults)
		}
		allowed, denied := out.AuthResults[0], out.AuthResults[1]
		if allowed.AuthDecision != types.AuthDecisionAllowed || !slices.Equal(policyNamesOf(allowed.Allowed.Policies), []string{"p", "q"}) ||
			allowed.AuthInfo.ActionType != types.ActionTypePublish {
			t.Fatalf("publish: %+v", allowed)
		}
		if denied.AuthDecision != types.AuthDecisionImplicitDeny || denied.Denied == nil || denied.Denied.ImplicitDeny == nil ||
			!slices.Equal(policyNamesOf(denied.Denied.ImplicitDeny.Policies), []string{"p", "q"}) {
			t.Fatalf("subscribe: %+v", denied)
		}
	})

	tests := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"fail/AttachPolicy-cognito", func() error {
			_, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("p"), Target: aws.String("us-east-1:0a1b2c3d-0000-0000-0000-000000000000")})
			return err
		}, "InvalidRequestException", 400},
		{"fail/AttachPolicy-unknown-policy", func() error {
			_, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("nope"), Target: aws.String(certARN)})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/AttachPolicy-missing-target", func() error {
			_, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("p"), Target: aws.String("")})
			return err
		}, "InvalidRequestException", 400},
		{"fail/DeletePolicy-attached", func() error {
			_, err := client.DeletePolicy(ctx, &iot.DeletePolicyInput{PolicyName: aws.String("p")})
			return err
		}, "DeleteConflictException", 409},
		{"fail/ListAttachedPolicies-unknown-group", func() error {
			_, err := client.ListAttachedPolicies(ctx, &iot.ListAttachedPoliciesInput{Target: aws.String("arn:aws:iot:us-east-1:111111111111:thinggroup/nope")})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/ListTargetsForPolicy-unknown", func() error {
			_, err := client.ListTargetsForPolicy(ctx, &iot.ListTargetsForPolicyInput{PolicyName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException", 404},
		{"fail/ListPrincipalPolicies-cognito", func() error {
			_, err := client.ListPrincipalPolicies(ctx, &iot.ListPrincipalPoliciesInput{Principal: aws.String("us-east-1:x")})
			return err
		}, "InvalidRequestException", 400},
		{"fail/GetEffectivePolicies-cognito", func() error {
			_, err := client.GetEffectivePolicies(ctx, &iot.GetEffectivePoliciesInput{Principal: aws.String(certARN), CognitoIdentityPoolId: aws.String("us-east-1:pool")})
			return err
		}, "InvalidRequestException", 400},
		{"fail/TestAuthorization-too-many", func() error {
			infos := make([]types.AuthInfo, 11)
			for i := range infos {
				infos[i] = types.AuthInfo{ActionType: types.ActionTypeConnect, Resources: []string{"*"}}
			}
			_, err := client.TestAuthorization(ctx, &iot.TestAuthorizationInput{Principal: aws.String(certARN), AuthInfos: infos})
			return err
		}, "InvalidRequestException", 400},
		{"fail/TestAuthorization-policy-to-add", func() error {
			_, err := client.TestAuthorization(ctx, &iot.TestAuthorizationInput{Principal: aws.String(certARN), PolicyNamesToAdd: []string{"nope"},
				AuthInfos: []types.AuthInfo{{ActionType: types.ActionTypeConnect, Resources: []string{"*"}}}})
			return err
		}, "ResourceNotFoundException", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantAPIError(t, tt.call(), tt.code, tt.status) })
	}

	t.Run("fail/LimitExceeded", func(t *testing.T) {
		// p is attached; 9 more reach the limit of 10 per certificate.
		for i := 0; i < 9; i++ {
			n := fmt.Sprint("extra", i)
			if _, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String(n), PolicyDocument: aws.String(testPolicyDoc)}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String(n), Target: aws.String(certARN)}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("q"), Target: aws.String(certARN)})
		wantAPIError(t, err, "LimitExceededException", 410)
	})
	t.Run("ok/DetachPolicy", func(t *testing.T) {
		if _, err := client.DetachPolicy(ctx, &iot.DetachPolicyInput{PolicyName: aws.String("q"), Target: root.ThingGroupArn}); err != nil {
			t.Fatal(err)
		}
		out, err := client.ListTargetsForPolicy(ctx, &iot.ListTargetsForPolicyInput{PolicyName: aws.String("q")})
		if err != nil || len(out.Targets) != 0 {
			t.Fatalf("targets after detach %+v %v", out, err)
		}
		if _, err := client.DeletePolicy(ctx, &iot.DeletePolicyInput{PolicyName: aws.String("q")}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPolicies_CrossAccount proves that another account's policies and
// certificates answer as if they did not exist.
func TestPolicies_CrossAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.Client(e.KeyA, testRegion), e.Client(e.KeyB, testRegion)
	certA := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	certARN := fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountA, Region: testRegion}, certA)
	if _, err := a.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(testPolicyDoc)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String("mine"), PolicyDocument: aws.String(testPolicyDoc)}); err != nil {
		t.Fatal(err)
	}
	notFound := []struct {
		name string
		call func() error
	}{
		{"GetPolicy", func() error { _, err := b.GetPolicy(ctx, &iot.GetPolicyInput{PolicyName: aws.String("p")}); return err }},
		{"DeletePolicy", func() error {
			_, err := b.DeletePolicy(ctx, &iot.DeletePolicyInput{PolicyName: aws.String("p")})
			return err
		}},
		{"CreatePolicyVersion", func() error {
			_, err := b.CreatePolicyVersion(ctx, &iot.CreatePolicyVersionInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(testPolicyDoc)})
			return err
		}},
		{"AttachPolicy-their-policy", func() error {
			_, err := b.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("p"), Target: aws.String(certARN)})
			return err
		}},
		{"AttachPolicy-their-certificate", func() error {
			_, err := b.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String("mine"), Target: aws.String(certARN)})
			return err
		}},
		{"ListAttachedPolicies", func() error {
			_, err := b.ListAttachedPolicies(ctx, &iot.ListAttachedPoliciesInput{Target: aws.String(certARN)})
			return err
		}},
		{"ListTargetsForPolicy", func() error {
			_, err := b.ListTargetsForPolicy(ctx, &iot.ListTargetsForPolicyInput{PolicyName: aws.String("p")})
			return err
		}},
		{"TestAuthorization", func() error {
			_, err := b.TestAuthorization(ctx, &iot.TestAuthorizationInput{Principal: aws.String(certARN),
				AuthInfos: []types.AuthInfo{{ActionType: types.ActionTypeConnect, Resources: []string{"*"}}}})
			return err
		}},
		{"GetEffectivePolicies", func() error {
			_, err := b.GetEffectivePolicies(ctx, &iot.GetEffectivePoliciesInput{Principal: aws.String(certARN)})
			return err
		}},
	}
	for _, tt := range notFound {
		t.Run("fail/"+tt.name, func(t *testing.T) { wantAPIError(t, tt.call(), "ResourceNotFoundException", 404) })
	}
	t.Run("ok/listings-are-per-account", func(t *testing.T) {
		out, err := b.ListPolicies(ctx, &iot.ListPoliciesInput{})
		if err != nil || !slices.Equal(policyNamesOf(out.Policies), []string{"mine"}) {
			t.Fatalf("B lists %+v %v", out, err)
		}
	})
}
