package check

// Schemas (openAPIV3Schema of the whole object) for the differential and
// fuzz tests, each with statuses (current, patch as JSON) that reach its
// rules. They are not validated as the API server validates a CRD: the
// checker must agree with the server's code on anything NewStructural
// takes, not only on what a CRD may hold.
var diffSchemas = []struct {
	name     string
	schema   string
	statuses [][2]string
}{
	{"values", `
type: object
required: [spec]
properties:
  spec: {type: object, properties: {size: {type: integer, default: 1}}}
  status:
    type: object
    required: [phase]
    minProperties: 1
    maxProperties: 6
    properties:
      phase: {type: string, enum: [Pending, Ready]}
      code: {type: integer, enum: [1, 2, 3]}
      ratio: {type: number, minimum: 0, exclusiveMinimum: true, maximum: 1, multipleOf: 0.25}
      replicas: {type: integer, minimum: 0, maximum: 10}
      name: {type: string, minLength: 2, maxLength: 5, pattern: '^[a-z]+$'}
      ready: {type: boolean}
      nodes: {type: array, minItems: 1, maxItems: 2, uniqueItems: true, items: {type: string}}
      labels: {type: object, maxProperties: 2, additionalProperties: {type: string}}
      observed:
        type: object
        required: [generation]
        properties: {generation: {type: integer, format: int64}}
`, [][2]string{
		{`{}`, `{"phase":"Ready"}`},
		{`{"phase":"Ready"}`, `{"phase":"Broken","code":4,"ratio":0,"replicas":11,"name":"ABCDEFG"}`},
		{``, `{"ratio":0.3,"replicas":-1,"name":"a","ready":"yes","nodes":["a","a","b"]}`},
		{``, `{"phase":"Ready","nodes":[],"labels":{"a":"1","b":"2","c":3},"observed":{}}`},
		{``, `{"phase":"Ready","observed":{"generation":1.5},"extra":1,"nodes":[1]}`},
		{``, `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"phase":"Ready","ratio":1,"code":2}`},
		{`{"phase":"Ready"}`, `{"phase":null}`},
		{``, `{"phase":["Ready"],"observed":"x","labels":[],"replicas":"3"}`},
	}},
	{"formats", `
type: object
properties:
  status:
    type: object
    properties:
      email: {type: string, format: email}
      when: {type: string, format: date-time}
      day: {type: string, format: date}
      id: {type: string, format: uuid}
      ip: {type: string, format: ipv4}
      net: {type: string, format: cidr}
      data: {type: string, format: byte}
      wait: {type: string, format: duration}
      short: {type: string, format: k8s-short-name}
      long: {type: string, format: k8s-long-name}
      color: {type: string, format: hex-color}
      odd: {type: string, format: not-a-format}
      num: {type: string, format: int32}
      count: {type: integer, format: int32}
      bad: {type: integer, format: date-time}
      ratio: {type: number, format: float}
      flag: {type: boolean, format: email}
      any: {format: email, x-kubernetes-preserve-unknown-fields: true}
      list: {type: array, format: uri, items: {type: string, format: uri}}
`, [][2]string{
		{``, `{"email":"a@b.c","when":"2024-01-02T03:04:05Z","day":"2024-01-02","id":"0b5e2e7c-1f2a-4b7c-9d1e-3f4a5b6c7d8e"}`},
		{``, `{"email":"nope","when":"yesterday","day":"2024-13-45","id":"xyz","ip":"1.2.3","net":"10.0.0.0/33"}`},
		{``, `{"data":"***","wait":"soon","short":"Not_A_Name","long":"a..b","color":"#zzz","odd":"whatever","num":"x"}`},
		{``, `{"count":3000000000,"bad":3,"ratio":1e300,"flag":true,"any":"nope","list":["::not a uri"]}`},
		{``, `{"ip":"10.1.2.3","net":"10.0.0.0/8","data":"aGVsbG8=","wait":"3s","short":"abc","long":"a.b.c","color":"#fff"}`},
	}},
	{"nullable and int-or-string", `
type: object
properties:
  status:
    type: object
    properties:
      maybe: {type: string, nullable: true}
      never: {type: string}
      fallback: {type: string, default: none}
      nullDefault: {type: string, nullable: true, default: set}
      port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer, minimum: 1}, {type: string, pattern: '^[a-z]+$'}]}
      loose: {x-kubernetes-int-or-string: true}
      obj:
        type: object
        nullable: true
        properties: {inner: {type: integer}, innerNull: {type: integer, nullable: true}}
      map: {type: object, additionalProperties: {type: string, nullable: true}}
      strict: {type: object, additionalProperties: {type: string}}
      defaulted: {type: object, additionalProperties: {type: string, default: d}}
      list: {type: array, items: {type: string}}
      nullItems: {type: array, items: {type: string, default: x}}
`, [][2]string{
		{``, `{"maybe":null,"never":null,"fallback":null,"nullDefault":null,"port":80,"loose":"http"}`},
		{``, `{"port":0,"loose":1.5,"obj":null,"map":{"a":null,"b":"x"},"strict":{"a":null,"b":"y"}}`},
		{``, `{"port":"HTTP","obj":{"inner":null,"innerNull":null},"defaulted":{"a":null},"list":[null,"a"],"nullItems":[null,"b"]}`},
		{``, `{"port":true,"loose":{"a":1},"obj":{"inner":"x"},"list":"x"}`},
		{`{"maybe":"a","never":"b"}`, `{"maybe":null,"obj":{"inner":1}}`},
		// A patch's nulls delete; the current status's reach the checks.
		{`{"maybe":null,"never":null,"fallback":null,"nullDefault":null,"obj":{"inner":null,"innerNull":null},"map":{"a":null},"strict":{"a":null},"defaulted":{"b":null}}`, `{}`},
		{`{"obj":null,"list":[null],"nullItems":[null]}`, `{"port":8080}`},
	}},
	{"preserve and additional properties", `
type: object
properties:
  status:
    type: object
    properties:
      extra:
        type: object
        x-kubernetes-preserve-unknown-fields: true
        properties:
          known: {type: object, properties: {a: {type: integer}}}
          count: {type: integer, maximum: 3}
      anything: {x-kubernetes-preserve-unknown-fields: true}
      open: {type: object, additionalProperties: true}
      closed: {type: object, additionalProperties: false}
      byName:
        type: object
        additionalProperties:
          type: object
          required: [ready]
          properties:
            ready: {type: boolean, default: false}
            reason: {type: string, enum: [A, B]}
      nested:
        type: array
        items:
          type: object
          properties:
            name: {type: string}
            tags: {type: array, items: {type: object, additionalProperties: {type: integer}}}
`, [][2]string{
		{``, `{"extra":{"x":1,"known":{"a":1,"b":2},"count":4},"anything":[1,{"z":null}]}`},
		{``, `{"open":{"a":{"b":1},"c":[{"d":2}],"e":3},"closed":{"a":1,"b":{"c":2}}}`},
		{``, `{"byName":{"x":{},"y":{"ready":"no","reason":"C","other":1},"z":null}}`},
		{``, `{"nested":[{"name":"a","tags":[{"a":1,"b":"two"}],"junk":true},{"tags":null}]}`},
		{`{"extra":{"x":{"y":1}}}`, `{"extra":{"x":{"y":null,"z":2}},"unknown":{"a":1}}`},
	}},
	{"defaults at depth", `
type: object
properties:
  spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
  status:
    type: object
    required: [phase, summary]
    properties:
      phase: {type: string, default: Pending, enum: [Pending, Ready]}
      summary:
        type: object
        required: [total]
        default: {total: 0, junk: 1, nested: {keep: a, drop: b}}
        properties:
          total: {type: integer, minimum: 0}
          nested: {type: object, properties: {keep: {type: string}}}
          level: {type: string, default: info}
      items:
        type: array
        default: [{name: first, extra: x}]
        items:
          type: object
          required: [name, state]
          properties:
            name: {type: string}
            state: {type: string, default: Unknown, enum: [Unknown, Up]}
            sub: {type: object, default: {}, properties: {depth: {type: integer, default: 3, maximum: 2}}}
      map:
        type: object
        default: {a: {x: 1}}
        additionalProperties:
          type: object
          properties:
            x: {type: integer}
            y: {type: integer, default: 2}
      preserved: {type: object, x-kubernetes-preserve-unknown-fields: true, default: {anything: [1, 2]}}
      wrongType: {type: integer, default: notanumber}
      open: {type: object, additionalProperties: true, default: {a: {b: 1}, c: 2}}
      closed: {type: object, additionalProperties: false, default: {a: {b: 1}}}
      capped: {type: object, maxProperties: 1, default: {a: 1, unknown: 2}, properties: {a: {type: integer}}}
      deep: {type: object, properties: {list: {type: array, items: {type: object, properties: {x: {type: object, default: {y: 1, z: 2}, properties: {y: {type: integer}}}}}}}}
`, [][2]string{
		{``, `{}`},
		{``, `{"phase":null,"summary":null,"items":[{"name":"a"},{"name":"b","sub":{}}]}`},
		{``, `{"summary":{"total":-1},"map":{"b":{},"c":{"x":null}},"preserved":null}`},
		{`{"phase":"Ready","summary":{"total":1}}`, `{"items":[{"name":"x","state":"Down","sub":{"depth":9}}],"wrongType":1}`},
		{``, `{"items":null,"map":null,"wrongType":null}`},
		{``, `{"items":[],"wrongType":1,"closed":{},"deep":{"list":[{},{"x":{"z":3}}]}}`},
		{``, `{"items":[],"wrongType":1,"open":null,"closed":{"q":{"r":1}},"deep":{"list":[{},{"x":{"z":3}},null]}}`},
	}},
	{"embedded resources", `
type: object
properties:
  status:
    type: object
    properties:
      template:
        type: object
        x-kubernetes-embedded-resource: true
        x-kubernetes-preserve-unknown-fields: true
        default: {apiVersion: v1, kind: ConfigMap, metadata: {name: cm, bogus: 1, labels: {a: b}}, data: {k: v}}
        properties: {metadata: {type: object, maxProperties: 2}}
      strict:
        type: object
        x-kubernetes-embedded-resource: true
        properties:
          spec: {type: object, properties: {n: {type: integer, default: 1}}}
          metadata:
            type: object
            properties:
              name: {type: string, default: fallback}
              generateName: {type: string}
      badMeta:
        type: object
        x-kubernetes-embedded-resource: true
        x-kubernetes-preserve-unknown-fields: true
        default: {apiVersion: 1, kind: [x], metadata: {name: 3, labels: {a: b}, annotations: [1]}}
      list:
        type: array
        items:
          type: object
          x-kubernetes-embedded-resource: true
          x-kubernetes-preserve-unknown-fields: true
          default: {kind: Pod, metadata: "nonsense"}
`, [][2]string{
		{``, `{}`},
		{``, `{"template":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","x":1}},"strict":{"spec":{},"other":1}}`},
		{``, `{"strict":{"apiVersion":3,"metadata":{"labels":{"a":"b"}},"spec":{"n":null}},"list":[null,{"kind":"Pod"}]}`},
		{``, `{"strict":{"kind":"X","spec":{"n":"one"}},"template":"x"}`},
	}},
	{"combinators and extensions", `
type: object
properties:
  status:
    type: object
    x-kubernetes-validations: [{rule: "self.a != 'forbidden'", message: nope}]
    properties:
      a: {type: string, allOf: [{minLength: 2}, {maxLength: 4}], not: {enum: [bad]}}
      b: {type: integer, oneOf: [{minimum: 10}, {maximum: 0}]}
      c: {type: string, anyOf: [{pattern: '^x'}, {pattern: 'y$'}]}
      list:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name]
        items: {type: object, required: [name], properties: {name: {type: string}}}
      set: {type: array, x-kubernetes-list-type: set, items: {type: string}}
      atomic: {type: object, x-kubernetes-map-type: atomic, properties: {z: {type: string}}}
`, [][2]string{
		{``, `{"a":"ok","b":11,"c":"xy","list":[{"name":"a"}],"set":["a","b"],"atomic":{"z":"1"}}`},
		{``, `{"a":"bad","b":5,"c":"zz","list":[{}],"set":["a","a"],"atomic":{"z":1,"q":2}}`},
		{``, `{"a":"toolong","b":-1,"c":"abc"}`},
	}},
}

// diffCRDs are whole CRDs for cases beside a schema: the legacy
// preserveUnknownFields, a status without a schema, a schema the checker
// refuses to build.
var diffCRDs = []string{memcachedCRD, preserveCRD, noStatusCRD, nestedDefaultsCRD}
