package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
)

// benchPolicy is the policy every benchmark device gets: AWS's example
// "connect as your thing name, publish, subscribe and receive under it"
// (https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html,
// topics specific to each device; thing-policy-variables.html), so that the
// gateway evaluates a realistic policy on every connection and packet.
const (
	benchPolicyName = "devicebench-thing"
	benchPolicy     = `{"Version": "2012-10-17", "Statement": [
	{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
	{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/bench/${iot:Connection.Thing.ThingName}/*"},
	{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/bench/${iot:Connection.Thing.ThingName}/*"},
	{"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/bench/${iot:Connection.Thing.ThingName}/*"}]}`
)

// authorize onboards a device the AWS way: thing thing, attached to the
// certificate certARN, and benchPolicy attached to the certificate. The
// device then connects with the thing's name as its client id.
func authorize(ctx context.Context, client *iot.Client, certARN, thing string) error {
	_, err := client.CreatePolicy(ctx, &iot.CreatePolicyInput{PolicyName: aws.String(benchPolicyName), PolicyDocument: aws.String(benchPolicy)})
	if exists := new(types.ResourceAlreadyExistsException); err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create policy: %w", err)
	}
	if _, err := client.CreateThing(ctx, &iot.CreateThingInput{ThingName: aws.String(thing)}); err != nil {
		return fmt.Errorf("create thing %s: %w", thing, err)
	}
	if _, err := client.AttachThingPrincipal(ctx, &iot.AttachThingPrincipalInput{ThingName: aws.String(thing), Principal: aws.String(certARN),
		ThingPrincipalType: types.ThingPrincipalTypeNonExclusiveThing}); err != nil {
		return fmt.Errorf("attach thing %s: %w", thing, err)
	}
	if _, err := client.AttachPolicy(ctx, &iot.AttachPolicyInput{PolicyName: aws.String(benchPolicyName), Target: aws.String(certARN)}); err != nil {
		return fmt.Errorf("attach policy: %w", err)
	}
	return nil
}
