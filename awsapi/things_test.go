package awsapi_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
)

// wantAPIError checks err's code and HTTP status as the SDK saw them.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if got, st := apiError(t, err); got != code || st != status {
		t.Fatalf("got %s %d (%v), want %s %d", got, st, err, code, status)
	}
}

// TestThings_Client drives every thing operation with the real
// aws-sdk-go-v2 IoT client, with its error codes and another account's
// view.
func TestThings_Client(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	client := e.Client(e.KeyA, testRegion)
	other := e.Client(e.KeyB, testRegion)
	certID := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	certARN := fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountA, Region: testRegion}, certID)
	otherID := e.mustRegister(e.KeyB, testRegion, fleetcert.StatusActive)
	otherARN := fleetcert.CertificateARN(fleetcert.Scope{AccountID: accountB, Region: testRegion}, otherID)

	// Thing types.
	tt, err := client.CreateThingType(ctx, &iot.CreateThingTypeInput{ThingTypeName: aws.String("bulb"),
		ThingTypeProperties: &types.ThingTypeProperties{ThingTypeDescription: aws.String("a bulb"), SearchableAttributes: []string{"watts"}}})
	if err != nil || aws.ToString(tt.ThingTypeArn) != "arn:aws:iot:us-east-1:111111111111:thingtype/bulb" || aws.ToString(tt.ThingTypeId) == "" {
		t.Fatalf("CreateThingType: %+v %v", tt, err)
	}
	_, err = client.CreateThingType(ctx, &iot.CreateThingTypeInput{ThingTypeName: aws.String("bulb")})
	var dup *types.ResourceAlreadyExistsException
	if !errors.As(err, &dup) {
		t.Fatalf("CreateThingType again: %v", err)
	}
	dtt, err := client.DescribeThingType(ctx, &iot.DescribeThingTypeInput{ThingTypeName: aws.String("bulb")})
	if err != nil || aws.ToString(dtt.ThingTypeProperties.ThingTypeDescription) != "a bulb" || dtt.ThingTypeMetadata.Deprecated {
		t.Fatalf("DescribeThingType: %+v %v", dtt, err)
	}
	ltt, err := client.ListThingTypes(ctx, &iot.ListThingTypesInput{})
	if err != nil || len(ltt.ThingTypes) != 1 || aws.ToString(ltt.ThingTypes[0].ThingTypeName) != "bulb" {
		t.Fatalf("ListThingTypes: %+v %v", ltt, err)
	}

	// Things.
	ct, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("lamp-1"), ThingTypeName: aws.String("bulb"),
		AttributePayload: &types.AttributePayload{Attributes: map[string]string{"watts": "60"}}})
	if err != nil || aws.ToString(ct.ThingArn) != "arn:aws:iot:us-east-1:111111111111:thing/lamp-1" || len(aws.ToString(ct.ThingId)) != 36 {
		t.Fatalf("CreateThing: %+v %v", ct, err)
	}
	for i := 2; i <= 3; i++ {
		if _, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String(fmt.Sprintf("lamp-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	dt, err := client.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("lamp-1")})
	if err != nil || aws.ToString(dt.DefaultClientId) != "lamp-1" || aws.ToString(dt.ThingId) != aws.ToString(ct.ThingId) ||
		dt.Version != 1 || dt.Attributes["watts"] != "60" || aws.ToString(dt.ThingTypeName) != "bulb" {
		t.Fatalf("DescribeThing: %+v %v", dt, err)
	}
	_, err = client.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("lamp-1"), ExpectedVersion: aws.Int64(1),
		AttributePayload: &types.AttributePayload{Attributes: map[string]string{"color": "red"}, Merge: true}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("lamp-1"), ExpectedVersion: aws.Int64(1)})
	var vc *types.VersionConflictException
	if !errors.As(err, &vc) {
		t.Fatalf("UpdateThing stale: %v", err)
	}
	wantAPIError(t, err, "VersionConflictException", 409)

	// ListThings, one a page, by attribute.
	var names []string
	var token *string
	for {
		out, err := client.ListThings(ctx, &iot.ListThingsInput{MaxResults: aws.Int32(1), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range out.Things {
			names = append(names, aws.ToString(th.ThingName))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if !slices.Equal(names, []string{"lamp-1", "lamp-2", "lamp-3"}) {
		t.Fatalf("ListThings pages: %v", names)
	}
	lt, err := client.ListThings(ctx, &iot.ListThingsInput{AttributeName: aws.String("color"), AttributeValue: aws.String("r"), UsePrefixAttributeValue: true})
	if err != nil || len(lt.Things) != 1 || aws.ToString(lt.Things[0].ThingName) != "lamp-1" || lt.Things[0].Version != 2 {
		t.Fatalf("ListThings by attribute: %+v %v", lt, err)
	}
	_, err = client.ListThings(ctx, &iot.ListThingsInput{MaxResults: aws.Int32(251)})
	wantAPIError(t, err, "InvalidRequestException", 400)

	// Thing groups.
	for _, g := range []struct{ name, parent string }{{"site", ""}, {"floor-1", "site"}} {
		in := &iot.CreateThingGroupInput{ThingGroupName: aws.String(g.name),
			ThingGroupProperties: &types.ThingGroupProperties{ThingGroupDescription: aws.String(g.name + " group")}}
		if g.parent != "" {
			in.ParentGroupName = aws.String(g.parent)
		}
		if _, err := client.CreateThingGroup(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	dg, err := client.DescribeThingGroup(ctx, &iot.DescribeThingGroupInput{ThingGroupName: aws.String("floor-1")})
	if err != nil || aws.ToString(dg.ThingGroupMetadata.ParentGroupName) != "site" || len(dg.ThingGroupMetadata.RootToParentThingGroups) != 1 ||
		aws.ToString(dg.ThingGroupMetadata.RootToParentThingGroups[0].GroupArn) != "arn:aws:iot:us-east-1:111111111111:thinggroup/site" ||
		aws.ToString(dg.ThingGroupProperties.ThingGroupDescription) != "floor-1 group" || dg.Version != 1 {
		t.Fatalf("DescribeThingGroup: %+v %v", dg, err)
	}
	ug, err := client.UpdateThingGroup(ctx, &iot.UpdateThingGroupInput{ThingGroupName: aws.String("floor-1"), ExpectedVersion: aws.Int64(1),
		ThingGroupProperties: &types.ThingGroupProperties{AttributePayload: &types.AttributePayload{Attributes: map[string]string{"level": "1"}}}})
	if err != nil || ug.Version != 2 {
		t.Fatalf("UpdateThingGroup: %+v %v", ug, err)
	}
	lg, err := client.ListThingGroups(ctx, &iot.ListThingGroupsInput{ParentGroup: aws.String("site")})
	if err != nil || len(lg.ThingGroups) != 1 || aws.ToString(lg.ThingGroups[0].GroupName) != "floor-1" {
		t.Fatalf("ListThingGroups: %+v %v", lg, err)
	}
	if _, err := client.AddThingToThingGroup(ctx, &iot.AddThingToThingGroupInput{ThingGroupName: aws.String("floor-1"), ThingName: aws.String("lamp-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddThingToThingGroup(ctx, &iot.AddThingToThingGroupInput{ThingGroupArn: aws.String("arn:aws:iot:us-east-1:111111111111:thinggroup/site"),
		ThingArn: aws.String("arn:aws:iot:us-east-1:111111111111:thing/lamp-2")}); err != nil {
		t.Fatal(err)
	}
	lin, err := client.ListThingsInThingGroup(ctx, &iot.ListThingsInThingGroupInput{ThingGroupName: aws.String("site"), Recursive: true})
	if err != nil || !slices.Equal(lin.Things, []string{"lamp-1", "lamp-2"}) {
		t.Fatalf("ListThingsInThingGroup: %+v %v", lin, err)
	}
	lgt, err := client.ListThingGroupsForThing(ctx, &iot.ListThingGroupsForThingInput{ThingName: aws.String("lamp-1")})
	if err != nil || len(lgt.ThingGroups) != 1 || aws.ToString(lgt.ThingGroups[0].GroupName) != "floor-1" {
		t.Fatalf("ListThingGroupsForThing: %+v %v", lgt, err)
	}
	_, err = client.DeleteThingGroup(ctx, &iot.DeleteThingGroupInput{ThingGroupName: aws.String("site")})
	wantAPIError(t, err, "InvalidRequestException", 400)
	if _, err := client.RemoveThingFromThingGroup(ctx, &iot.RemoveThingFromThingGroupInput{ThingGroupName: aws.String("floor-1"), ThingName: aws.String("lamp-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteThingGroup(ctx, &iot.DeleteThingGroupInput{ThingGroupName: aws.String("floor-1"), ExpectedVersion: aws.Int64(2)}); err != nil {
		t.Fatal(err)
	}

	// Thing principals: the principal travels in x-amzn-principal.
	if _, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("lamp-1"), Principal: aws.String(certARN),
		ThingPrincipalType: types.ThingPrincipalTypeExclusiveThing}); err != nil {
		t.Fatal(err)
	}
	_, err = client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("lamp-2"), Principal: aws.String(certARN)})
	wantAPIError(t, err, "InvalidRequestException", 400)
	ltp, err := client.ListThingPrincipals(ctx, &iot.ListThingPrincipalsInput{ThingName: aws.String("lamp-1")})
	if err != nil || !slices.Equal(ltp.Principals, []string{certARN}) {
		t.Fatalf("ListThingPrincipals: %+v %v", ltp, err)
	}
	ltp2, err := client.ListThingPrincipalsV2(ctx, &iot.ListThingPrincipalsV2Input{ThingName: aws.String("lamp-1"), ThingPrincipalType: types.ThingPrincipalTypeExclusiveThing})
	if err != nil || len(ltp2.ThingPrincipalObjects) != 1 || ltp2.ThingPrincipalObjects[0].ThingPrincipalType != types.ThingPrincipalTypeExclusiveThing {
		t.Fatalf("ListThingPrincipalsV2: %+v %v", ltp2, err)
	}
	lpt, err := client.ListPrincipalThings(ctx, &iot.ListPrincipalThingsInput{Principal: aws.String(certARN)})
	if err != nil || !slices.Equal(lpt.Things, []string{"lamp-1"}) {
		t.Fatalf("ListPrincipalThings: %+v %v", lpt, err)
	}
	lpt2, err := client.ListPrincipalThingsV2(ctx, &iot.ListPrincipalThingsV2Input{Principal: aws.String(certARN)})
	if err != nil || len(lpt2.PrincipalThingObjects) != 1 || aws.ToString(lpt2.PrincipalThingObjects[0].ThingName) != "lamp-1" {
		t.Fatalf("ListPrincipalThingsV2: %+v %v", lpt2, err)
	}

	// Attached: the certificate and the thing are not deleted.
	if _, err := client.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(certID), NewStatus: types.CertificateStatusInactive}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(certID), ForceDelete: true})
	var dc *types.DeleteConflictException
	if !errors.As(err, &dc) || !strings.Contains(aws.ToString(dc.Message), "Things must be detached") {
		t.Fatalf("DeleteCertificate attached: %v", err)
	}
	wantAPIError(t, err, "DeleteConflictException", 409)
	_, err = client.DeleteThing(ctx, &iot.DeleteThingInput{ThingName: aws.String("lamp-1")})
	wantAPIError(t, err, "InvalidRequestException", 400)

	// Another account sees none of it, and its certificate is no principal here.
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"DescribeThing", func() error {
			_, err := other.DescribeThing(ctx, &iot.DescribeThingInput{ThingName: aws.String("lamp-1")})
			return err
		}, "ResourceNotFoundException"},
		{"DescribeThingType", func() error {
			_, err := other.DescribeThingType(ctx, &iot.DescribeThingTypeInput{ThingTypeName: aws.String("bulb")})
			return err
		}, "ResourceNotFoundException"},
		{"DescribeThingGroup", func() error {
			_, err := other.DescribeThingGroup(ctx, &iot.DescribeThingGroupInput{ThingGroupName: aws.String("site")})
			return err
		}, "ResourceNotFoundException"},
		{"ListThingPrincipals", func() error {
			_, err := other.ListThingPrincipals(ctx, &iot.ListThingPrincipalsInput{ThingName: aws.String("lamp-1")})
			return err
		}, "ResourceNotFoundException"},
		{"ListPrincipalThings of A's certificate", func() error {
			_, err := other.ListPrincipalThings(ctx, &iot.ListPrincipalThingsInput{Principal: aws.String(certARN)})
			return err
		}, "ResourceNotFoundException"},
		{"AttachThingPrincipal of B's certificate", func() error {
			_, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("lamp-3"), Principal: aws.String(otherARN)})
			return err
		}, "ResourceNotFoundException"},
		{"AddThingToThingGroup by A's ARN", func() error {
			_, err := other.AddThingToThingGroup(ctx, &iot.AddThingToThingGroupInput{ThingGroupArn: aws.String("arn:aws:iot:us-east-1:111111111111:thinggroup/site"), ThingName: aws.String("lamp-1")})
			return err
		}, "ResourceNotFoundException"},
		{"UpdateThing", func() error {
			_, err := other.UpdateThing(ctx, &iot.UpdateThingInput{ThingName: aws.String("lamp-1")})
			return err
		}, "ResourceNotFoundException"},
		{"Cognito principal", func() error {
			_, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String("lamp-3"),
				Principal: aws.String("us-east-1:12345678-1234-1234-1234-123456789012")})
			return err
		}, "InvalidRequestException"},
		{"bad thing name", func() error {
			_, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("no spaces")})
			return err
		}, "InvalidRequestException"},
		{"unknown thing type", func() error {
			_, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String("x"), ThingTypeName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException"},
		{"delete a type not deprecated", func() error {
			_, err := client.DeleteThingType(ctx, &iot.DeleteThingTypeInput{ThingTypeName: aws.String("bulb")})
			return err
		}, "InvalidRequestException"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatalf("no error, want %s", tc.code)
			}
			if code, _ := apiError(t, err); code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	if out, err := other.ListThings(ctx, &iot.ListThingsInput{}); err != nil || len(out.Things) != 0 {
		t.Fatalf("B's ListThings: %+v %v", out, err)
	}

	// Detach, then both go.
	if _, err := client.DetachThingPrincipal(ctx, &iot.DetachThingPrincipalInput{ThingName: aws.String("lamp-1"), Principal: aws.String(certARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteThing(ctx, &iot.DeleteThingInput{ThingName: aws.String("lamp-1"), ExpectedVersion: aws.Int64(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteCertificate(ctx, &iot.DeleteCertificateInput{CertificateId: aws.String(certID)}); err != nil {
		t.Fatal(err)
	}

	// Thing type lifecycle: deprecate, then delete five minutes later.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e.Registry.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	if _, err := client.DeprecateThingType(ctx, &iot.DeprecateThingTypeInput{ThingTypeName: aws.String("bulb")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DeleteThingType(ctx, &iot.DeleteThingTypeInput{ThingTypeName: aws.String("bulb")})
	wantAPIError(t, err, "InvalidRequestException", 400)
	clock.Add(int64(fleetcert.ThingTypeDeleteDelay))
	if _, err := client.DeleteThingType(ctx, &iot.DeleteThingTypeInput{ThingTypeName: aws.String("bulb")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DescribeThingType(ctx, &iot.DescribeThingTypeInput{ThingTypeName: aws.String("bulb")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
}
