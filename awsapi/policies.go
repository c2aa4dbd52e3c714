package awsapi

// policyOperations are the operations of policies, their versions and
// attachments, GetEffectivePolicies and TestAuthorization (issue 15).
var policyOperations = []operation{}
