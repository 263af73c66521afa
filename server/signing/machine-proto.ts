import * as protoLoader from '@grpc/proto-loader';

// The one RPC of Talos' machine API the gate calls, written from the field numbers of Talos'
// api/machine/machine.proto (and api/common/common.proto for the metadata every answer carries):
//
//   package machine;
//   service MachineService {
//     rpc GenerateClientConfiguration(GenerateClientConfigurationRequest) returns (GenerateClientConfigurationResponse);
//   }
//   message GenerateClientConfigurationRequest {
//     repeated string roles = 1;                 // roles in the generated client certificate
//     google.protobuf.Duration crt_ttl = 2;      // its lifetime
//   }
//   message GenerateClientConfiguration {
//     common.Metadata metadata = 1;              // hostname = 1, error = 2 (set when apid proxied and that node failed)
//     bytes ca = 2;  bytes crt = 3;  bytes key = 4;  bytes talosconfig = 5;   // PEM, and a whole talosconfig
//   }
//   message GenerateClientConfigurationResponse { repeated GenerateClientConfiguration messages = 1; }
//
// It is given to proto-loader in protobuf.js's JSON form rather than as a .proto file: tsc copies
// no .proto into dist/, and this way the subset ships inside the compiled module. The tests' fake
// apid loads the same subset from a .proto file (test/signer/machine.proto), so a field number
// mistyped in one of the two shows as a failing exchange.

type Descriptor = Parameters<typeof protoLoader.fromJSON>[0];

const DESCRIPTOR: Descriptor = {
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
          },
        },
      },
    },
    common: {
      nested: {
        Metadata: { fields: { hostname: { type: 'string', id: 1 }, error: { type: 'string', id: 2 } } },
      },
    },
    machine: {
      nested: {
        MachineService: {
          methods: {
            GenerateClientConfiguration: {
              requestType: 'GenerateClientConfigurationRequest',
              responseType: 'GenerateClientConfigurationResponse',
              comment: 'a client certificate (and key) for the given roles and lifetime, signed by the OS CA',
            },
          },
        },
        GenerateClientConfigurationRequest: {
          fields: {
            roles: { rule: 'repeated', type: 'string', id: 1 },
            crt_ttl: { type: 'google.protobuf.Duration', id: 2 },
          },
        },
        GenerateClientConfiguration: {
          fields: {
            metadata: { type: 'common.Metadata', id: 1 },
            ca: { type: 'bytes', id: 2 },
            crt: { type: 'bytes', id: 3 },
            key: { type: 'bytes', id: 4 },
            talosconfig: { type: 'bytes', id: 5 },
          },
        },
        GenerateClientConfigurationResponse: {
          fields: { messages: { rule: 'repeated', type: 'GenerateClientConfiguration', id: 1 } },
        },
      },
    },
  },
};

/** Field names as written (keepCase), int64 as strings, absent fields absent (no defaults filled in). */
export const PROTO_OPTIONS = { keepCase: true, longs: String, defaults: false, oneofs: true } as const;

export const machinePackageDefinition = protoLoader.fromJSON(DESCRIPTOR, PROTO_OPTIONS);

export const GENERATE_CLIENT_CONFIGURATION = '/machine.MachineService/GenerateClientConfiguration';

export interface GenerateClientConfigurationRequest {
  roles: string[];
  crt_ttl: { seconds: number; nanos: number };
}

/** An answer as proto-loader decodes it: bytes as Buffers, absent fields absent. */
export interface GenerateClientConfigurationResponse {
  messages?: {
    metadata?: { hostname?: string; error?: string };
    ca?: Buffer;
    crt?: Buffer;
    key?: Buffer;
    talosconfig?: Buffer;
  }[];
}
