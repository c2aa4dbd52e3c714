package awsapi_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/fleetcert/fleetcert"
)

func TestDescribeEndpoint(t *testing.T) {
	e := newEnv(t)
	var gotScope fleetcert.Scope
	e.Handler.Endpoint = func(scope fleetcert.Scope, endpointType string) (string, error) {
		gotScope = scope
		switch endpointType {
		case "iot:Data-ATS":
			return scope.AccountID + "-ats.iot." + scope.Region + ".example.com", nil
		case "":
			return scope.AccountID + ".iot." + scope.Region + ".example.com", nil
		}
		return "", fleetcert.Errorf(fleetcert.EInvalidRequest, "Unknown endpointType %q.", endpointType)
	}
	c := e.Client(e.KeyA, "eu-west-1")
	ctx := context.Background()
	t.Run("ok/ats", func(t *testing.T) {
		out, err := c.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Data-ATS")})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := aws.ToString(out.EndpointAddress), accountA+"-ats.iot.eu-west-1.example.com"; got != want {
			t.Errorf("endpointAddress %q, want %q", got, want)
		}
		if gotScope != (fleetcert.Scope{AccountID: accountA, Region: "eu-west-1"}) {
			t.Errorf("scope %v", gotScope)
		}
	})
	t.Run("ok/no-type", func(t *testing.T) {
		out, err := c.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{})
		if err != nil || aws.ToString(out.EndpointAddress) != accountA+".iot.eu-west-1.example.com" {
			t.Fatalf("%v %v", out, err)
		}
	})
	t.Run("fail/unknown-type", func(t *testing.T) {
		_, err := c.DescribeEndpoint(ctx, &iot.DescribeEndpointInput{EndpointType: aws.String("iot:Nope")})
		wantError[*types.InvalidRequestException](t, err, 400)
	})
}
