// The e.firma, handled in this browser only (node-forge, vendored): read the .cer, decrypt SAT's encrypted PKCS#8
// .key with its password (PBES2 with 3DES, or AES in newer files), sign the service's challenge with RSA PKCS#1
// v1.5 SHA-256. Only the certificate and the signature are ever sent.

const forge = () => {
  if (!window.forge) throw new Error("No se cargó la biblioteca de firma (node-forge). Recargue la página.");
  return window.forge;
};

const OID = { rfc: "2.5.4.45", curp: "2.5.4.5", ou: "2.5.4.11", cn: "2.5.4.3", name: "2.5.4.41", o: "2.5.4.10" };

function binary(bytes) {
  // forge works on "binary strings" (one char per byte); chunked to stay clear of argument-count limits.
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

function der(bytes) {
  const text = binary(bytes);
  if (text.startsWith("-----BEGIN")) return forge().pem.decode(text)[0].body;
  return text;
}

export function readCertificate(bytes) {
  const f = forge();
  let cert;
  try {
    cert = f.pki.certificateFromAsn1(f.asn1.fromDer(der(bytes)));
  } catch {
    throw new Error("Ese archivo no es un certificado .cer legible.");
  }
  const first = (oid) => cert.subject.attributes.find((a) => a.type === oid)?.value;
  const own = (value) => (value || "").split("/")[0].trim() || null;
  const usages = cert.getExtension("extKeyUsage") || {};
  const hasOu = cert.subject.attributes.some((a) => a.type === OID.ou);
  return {
    rfc: own(first(OID.rfc)),
    nombre: first(OID.cn) || first(OID.name) || first(OID.o) || null,
    desde: cert.validity.notBefore,
    hasta: cert.validity.notAfter,
    // The service's own rule (app/security/efirma.py): a CSD names a branch in OU and has no extended key usage.
    esEfirma: !hasOu && Boolean(usages.clientAuth || usages.emailProtection),
    base64: f.util.encode64(der(bytes)),
    publicKey: cert.publicKey,
  };
}

export function unlockKey(bytes, password, certificate) {
  const f = forge();
  let info = null;
  try {
    info = f.pki.decryptPrivateKeyInfo(f.asn1.fromDer(der(bytes)), password);
  } catch {
    info = null;
  }
  if (!info) throw new Error("No se pudo abrir la llave privada: revise que sea el archivo .key y su contraseña.");
  const key = f.pki.privateKeyFromAsn1(info);
  if (!key.n.equals(certificate.publicKey.n) || !key.e.equals(certificate.publicKey.e)) {
    throw new Error("La llave privada no corresponde a ese certificado.");
  }
  return key;
}

export function signChallenge(key, retoBase64) {
  const f = forge();
  const digest = f.md.sha256.create();
  digest.update(f.util.decode64(retoBase64));
  return f.util.encode64(key.sign(digest, "RSASSA-PKCS1-V1_5"));
}
