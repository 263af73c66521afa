// A Talos secrets bundle (`talosctl gen secrets` → secrets.yaml; siderolabs/talos
// pkg/machinery/config/generate/secrets/bundle.go) merged into a config at render time, so
// templates need not inline CA keys and tokens: the keys live in one file (mode 0600), and the
// database keeps only the sealed configs rendered from it.
//
// The bundle's fields, and where Talos' own generator puts them (generate/controlplane.go, worker.go):
//   cluster.id, cluster.secret           -> cluster.id, cluster.secret (discovery identity)
//   secrets.bootstraptoken               -> cluster.token
//   secrets.secretboxencryptionsecret    -> cluster.secretboxEncryptionSecret (control plane)
//   secrets.aescbcencryptionsecret       -> cluster.aescbcEncryptionSecret (control plane, older clusters)
//   trustdinfo.token                     -> machine.token
//   certs.os {crt, key}                  -> machine.ca (workers: the certificate only)
//   certs.k8s {crt, key}                 -> cluster.ca (workers: the certificate only)
//   certs.k8saggregator {crt, key}       -> cluster.aggregatorCA (control plane)
//   certs.k8sserviceaccount {key}        -> cluster.serviceAccount (control plane)
//   certs.etcd {crt, key}                -> cluster.etcd.ca (control plane)
// Certificates and keys stay as the bundle has them: base64 of the PEM, as the config wants them.
import { isMap, type YamlMap } from './strategic-merge.js';

export class BundleError extends Error {
  constructor(
    readonly where: string,
    readonly problem: string,
  ) {
    super(`${where}: ${problem}`);
  }
}

function field(doc: YamlMap, path: string, required: boolean): string | undefined {
  let node: unknown = doc;
  for (const k of path.split('.')) {
    if (!isMap(node) || !Object.hasOwn(node, k)) {
      node = undefined;
      break;
    }
    node = node[k];
  }
  if (node === undefined || node === null || node === '') {
    if (required) throw new BundleError(path, 'is required in a secrets bundle (`talosctl gen secrets` writes it)');
    return undefined;
  }
  if (typeof node !== 'string') throw new BundleError(path, 'must be a string');
  return node;
}

/** Whether a machine.type renders a control-plane node (init is the old name of the first one). */
function isControlPlane(machineType: unknown, file: string): boolean {
  if (machineType === 'controlplane' || machineType === 'init') return true;
  if (machineType === 'worker') return false;
  throw new BundleError(file, `machine.type must be controlplane or worker to merge a secrets bundle, got ${JSON.stringify(machineType)}`);
}

/**
 * The strategic merge patch that puts a bundle's secrets into a v1alpha1 document of the given
 * machine.type: a control plane gets every secret, a worker only what a worker config holds.
 */
export function bundlePatch(bundle: unknown, machineType: unknown, file: string): YamlMap {
  if (!isMap(bundle)) throw new BundleError(file, 'a secrets bundle must be a map');
  const cp = isControlPlane(machineType, file);
  const osCrt = field(bundle, 'certs.os.crt', true) as string;
  const k8sCrt = field(bundle, 'certs.k8s.crt', true) as string;
  const machine: YamlMap = { token: field(bundle, 'trustdinfo.token', true), ca: { crt: osCrt, key: cp ? field(bundle, 'certs.os.key', true) : '' } };
  const cluster: YamlMap = {
    id: field(bundle, 'cluster.id', true),
    secret: field(bundle, 'cluster.secret', true),
    token: field(bundle, 'secrets.bootstraptoken', true),
    ca: { crt: k8sCrt, key: cp ? field(bundle, 'certs.k8s.key', true) : '' },
  };
  if (cp) {
    const secretbox = field(bundle, 'secrets.secretboxencryptionsecret', false);
    const aescbc = field(bundle, 'secrets.aescbcencryptionsecret', false);
    if (secretbox === undefined && aescbc === undefined) throw new BundleError('secrets.secretboxencryptionsecret', 'is required in a secrets bundle (or secrets.aescbcencryptionsecret)');
    if (secretbox !== undefined) cluster.secretboxEncryptionSecret = secretbox;
    if (aescbc !== undefined) cluster.aescbcEncryptionSecret = aescbc;
    cluster.aggregatorCA = { crt: field(bundle, 'certs.k8saggregator.crt', true), key: field(bundle, 'certs.k8saggregator.key', true) };
    cluster.serviceAccount = { key: field(bundle, 'certs.k8sserviceaccount.key', true) };
    cluster.etcd = { ca: { crt: field(bundle, 'certs.etcd.crt', true), key: field(bundle, 'certs.etcd.key', true) } };
  }
  return { machine, cluster };
}
