package awsapi

// thingOperations are the operations of things, thing types, thing groups
// and thing principals (issue 15).
var thingOperations = []operation{}
