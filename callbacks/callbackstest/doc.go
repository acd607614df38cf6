// Package callbackstest makes a Go handler's unit test a few lines, with no
// cluster and no gateway: it builds the CallbackRequest the gateway would
// send, POSTs it to the handler in memory, checks the answer against the
// response schema as the gateway does, and offers assertions on the result.
//
//	func TestCreateMakesADeployment(t *testing.T) {
//		req := callbackstest.NewRequest(t, callbacks.EventCreate, `
//			apiVersion: cache.example.com/v1alpha1
//			kind: Memcached
//			metadata: {name: example, namespace: demo}
//			spec: {size: 3}`, callbackstest.WithCallback("create-deployment"))
//		res := callbackstest.Call(t, newMux(), req, callbackstest.AtPath("/create"))
//		d := res.Child("apps/v1", "Deployment", "example")
//		if n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); n != 3 {
//			t.Errorf("replicas = %d, want 3", n)
//		}
//	}
//
// Objects are written in YAML or JSON; the common indentation of a Go raw
// string is removed first, tabs included. Requests carry what the gateway
// would put in them: WithOld computes "old" and "diff" the gateway's way,
// and WithChildren and WithRelated key objects as the gateway does. Result
// methods fail the test, with the answer in the message, when what they
// look for is not there.
package callbackstest
