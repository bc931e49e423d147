#include "test_ca.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "common/fs.h"
#include "process.h"

namespace egressd::test {
namespace {

constexpr milliseconds kOpensslTimeout{15000};

// A minimal openssl.cnf: independent of the system's, so that defaults there (extensions
// added by `req -x509`, policies of `ca`) cannot change what the tests get.
std::string opensslConfig(const std::string& dir, const TestCaOptions& o) {
  std::ostringstream c;
  c << "[ req ]\n"
       "distinguished_name = dn\n"
       "prompt = no\n"
       "[ dn ]\n"
       "CN = unused\n"
       "[ v3_ca ]\n"
       "basicConstraints = critical,CA:TRUE\n"
       "keyUsage = critical,keyCertSign,cRLSign\n"
       "subjectKeyIdentifier = hash\n";
  for (const char* name : {"testca", "otherca"}) {
    const std::string d = dir + "/" + name;
    c << "[ " << name << " ]\n"
      << "database = " << d << "/index.txt\n"
      << "new_certs_dir = " << d << "\n"
      << "serial = " << d << "/serial\n"
      << "certificate = " << dir << (std::string(name) == "testca" ? "/ca.crt" : "/other-ca.crt")
      << "\n"
      << "private_key = " << dir << (std::string(name) == "testca" ? "/ca.key" : "/other-ca.key")
      << "\n"
      << "default_md = sha256\n"
         "policy = pol\n"
         "unique_subject = no\n"
         "email_in_dn = no\n"
         "copy_extensions = none\n";
  }
  c << "[ pol ]\n"
       "commonName = supplied\n";
  auto leaf = [&](const char* section, const std::string& san) {
    c << "[ " << section << " ]\n"
      << "basicConstraints = critical,CA:FALSE\n"
         "keyUsage = critical,digitalSignature\n"
         "extendedKeyUsage = serverAuth\n"
         "subjectKeyIdentifier = hash\n"
         "authorityKeyIdentifier = keyid\n"
         "subjectAltName = "
      << san << "\n";
  };
  std::string san;
  for (const auto& n : o.dnsNames) {
    san += (san.empty() ? "" : ",") + std::string("DNS:") + n;
  }
  for (const auto& ip : o.ips) {
    san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  }
  leaf("leaf_good", san);
  leaf("leaf_wrongname", "DNS:wrong.test");
  return c.str();
}

Status openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  return runChecked(args, kOpensslTimeout);
}

Status makeCa(const std::string& dir, const std::string& cfg, const std::string& name,
              const std::string& subject) {
  EGRESSD_TRY(makeDirs(dir + "/" + name, 0700));
  EGRESSD_TRY(writeFileAtomic(dir + "/" + name + "/index.txt", ""));
  EGRESSD_TRY(
      writeFileAtomic(dir + "/" + name + "/serial", name == "testca" ? "1000\n" : "5000\n"));
  const std::string base = dir + (name == "testca" ? "/ca" : "/other-ca");
  return openssl({"req",         "-config",     cfg,
                  "-x509",       "-new",        "-newkey",
                  "ec",          "-pkeyopt",    "ec_paramgen_curve:P-256",
                  "-nodes",      "-keyout",     base + ".key",
                  "-out",        base + ".crt", "-days",
                  "30",          "-subj",       subject,
                  "-extensions", "v3_ca"});
}

// A key + CSR for `cn`, signed by CA section `ca` with extensions `ext`; `dates` are extra
// arguments of `openssl ca` (-days or -startdate/-enddate).
Result<TestCert> makeLeaf(const std::string& dir, const std::string& cfg, const std::string& file,
                          const std::string& cn, const std::string& ca, const std::string& ext,
                          const std::vector<std::string>& dates) {
  TestCert c;
  c.certFile = dir + "/" + file + ".crt";
  c.keyFile = dir + "/" + file + ".key";
  const std::string csr = dir + "/" + file + ".csr";
  EGRESSD_TRY(openssl({"req", "-config", cfg, "-new", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-keyout", c.keyFile, "-out", csr,
                       "-subj", "/CN=" + cn}));
  std::vector<std::string> args{"ca",       "-config",     cfg,   "-name", ca,
                                "-batch",   "-notext",     "-in", csr,     "-out",
                                c.certFile, "-extensions", ext};
  args.insert(args.end(), dates.begin(), dates.end());
  EGRESSD_TRY(openssl(args));
  auto info = inspectCertFile(c.certFile);
  if (!info.ok()) {
    return std::move(info).error();
  }
  c.sha256 = info->sha256;
  return c;
}

std::string afterPrefix(const std::string& line, const std::string& prefix) {
  return line.substr(prefix.size());
}

}  // namespace

Result<TestCa> TestCa::create(const TestCaOptions& options) {
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  TestCa ca(std::move(dir).value());
  const std::string d = ca.dir();
  auto cfg = ca.dir_.writeFile("openssl.cnf", opensslConfig(d, options));
  if (!cfg.ok()) {
    return std::move(cfg).error();
  }
  EGRESSD_TRY(makeCa(d, *cfg, "testca", "/O=egressd tests/CN=egressd e2e test root CA"));
  EGRESSD_TRY(makeCa(d, *cfg, "otherca", "/O=egressd tests/CN=egressd e2e untrusted CA"));
  const std::string cn = options.dnsNames.empty() ? "test origin" : options.dnsNames.front();
  const std::vector<std::string> now{"-days", "30"};
  auto good = makeLeaf(d, *cfg, "good", cn, "testca", "leaf_good", now);
  auto expired = makeLeaf(d, *cfg, "expired", cn, "testca", "leaf_good",
                          {"-startdate", "20200101000000Z", "-enddate", "20200201000000Z"});
  auto wrong = makeLeaf(d, *cfg, "wrongname", "wrong.test", "testca", "leaf_wrongname", now);
  auto untrusted = makeLeaf(d, *cfg, "untrusted", cn, "otherca", "leaf_good", now);
  for (const auto* r : {&good, &expired, &wrong, &untrusted}) {
    if (!r->ok()) {
      return r->error().wrap("test CA in " + d);
    }
  }
  ca.good_ = *good;
  ca.expired_ = *expired;
  ca.wrongName_ = *wrong;
  ca.untrusted_ = *untrusted;
  return ca;
}

Result<CertInfo> inspectCertFile(const std::string& path) {
  auto r = run(SpawnOptions{.argv = {"openssl", "x509", "-in", path, "-noout", "-nameopt",
                                     "RFC2253", "-subject", "-issuer", "-serial", "-fingerprint",
                                     "-sha256", "-enddate", "-ext", "subjectAltName"}},
               kOpensslTimeout);
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EINVAL, "openssl x509 " + path + ": " + r->describe());
  }
  CertInfo info;
  std::istringstream in(r->out);
  std::string line;
  bool sanNext = false;
  while (std::getline(in, line)) {
    if (sanNext) {
      info.san = line.substr(std::min(line.find_first_not_of(' '), line.size()));
      sanNext = false;
    } else if (line.starts_with("subject=")) {
      info.subject = afterPrefix(line, "subject=");
    } else if (line.starts_with("issuer=")) {
      info.issuer = afterPrefix(line, "issuer=");
    } else if (line.starts_with("serial=")) {
      info.serial = afterPrefix(line, "serial=");
    } else if (line.starts_with("notAfter=")) {
      info.notAfter = afterPrefix(line, "notAfter=");
    } else if (line.find("Fingerprint=") != std::string::npos) {
      for (char c : line.substr(line.find('=') + 1)) {
        if (std::isxdigit(static_cast<unsigned char>(c))) {
          info.sha256 += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
      }
    } else if (line.find("Subject Alternative Name") != std::string::npos) {
      sanNext = true;
    }
  }
  if (info.sha256.size() != 64) {
    return Error(EINVAL, "openssl x509 " + path + ": no SHA-256 fingerprint in: " + r->out);
  }
  return info;
}

Result<CertInfo> inspectCertPem(const std::string& pem) {
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  auto path = dir->writeFile("cert.pem", pem);
  if (!path.ok()) {
    return std::move(path).error();
  }
  return inspectCertFile(*path);
}

Status verifyCertPem(const std::string& leafPem, const std::string& caFile) {
  auto dir = TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  auto path = dir->writeFile("leaf.pem", leafPem);
  if (!path.ok()) {
    return std::move(path).error();
  }
  // -no-CApath / -no-CAfile defaults: only `caFile` is trusted.
  auto r = run(SpawnOptions{.argv = {"openssl", "verify", "-no-CApath", "-CAfile", caFile, *path}},
               kOpensslTimeout);
  if (!r.ok()) {
    return std::move(r).error();
  }
  if (!r->succeeded()) {
    return Error(EPERM, "openssl verify -CAfile " + caFile + ": " + r->out + r->err);
  }
  return okStatus();
}

}  // namespace egressd::test
