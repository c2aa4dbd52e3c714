package awsapi

import (
	"net/http"

	"github.com/fleetcert/fleetcert"
)

type describeEndpointOutput struct {
	EndpointAddress string `json:"endpointAddress"`
}

// describeEndpoint serves GET /endpoint?endpointType=.
func (h *Handler) describeEndpoint(c *call, r *http.Request) (any, error) {
	if h.Endpoint == nil {
		return nil, fleetcert.Errorf(fleetcert.EInvalidRequest,
			"fleetcert does not implement DescribeEndpoint yet: start it with --mqtt-addr to serve devices.")
	}
	endpointType, _ := queryString(c.query, "endpointType")
	addr, err := h.Endpoint(c.scope, endpointType)
	if err != nil {
		return nil, err
	}
	return &describeEndpointOutput{EndpointAddress: addr}, nil
}
