using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Tls;

/// <summary>One certificate of a listener with the server names it is chosen for (empty for the default-only one).</summary>
internal sealed record SniCertificate(PemCertificate Pem, IReadOnlyList<string> Hosts);

/// <summary>
/// An https listener's TLS settings, parsed and with every PEM file read: what `check` validates and what
/// <see cref="ListenerTls"/> is built from. Reading it touches only local files, never the network.
/// </summary>
internal sealed record ListenerTlsSettings(
    HttpProtocols Protocols,
    SslProtocols SslProtocols,
    IReadOnlyList<TlsCipherSuite> CipherSuites,
    ClientCertificateValidator? ClientCertificates,
    bool OcspStapling,
    SniCertificate Default,
    IReadOnlyList<SniCertificate> ByName)
{
    /// <summary>The TLS 1.3 suites (OpenSSL offers the first three by default).</summary>
    public static readonly TlsCipherSuite[] Tls13Suites =
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256, TlsCipherSuite.TLS_AES_256_GCM_SHA384, TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_AES_128_CCM_SHA256, TlsCipherSuite.TLS_AES_128_CCM_8_SHA256,
    ];

    /// <summary>
    /// The listener's settings, or null with every problem added to <paramref name="errors"/> (file and JSON path under
    /// <paramref name="jsonPath"/>, the Listen entry). Relative paths are relative to the main file.
    /// </summary>
    public static ListenerTlsSettings? TryLoad(ListenerOptions listen, string mainFile, string jsonPath, List<ConfigError> errors)
    {
        int before = errors.Count;
        var baseDirectory = Path.GetDirectoryName(Path.GetFullPath(mainFile))!;
        void Error(string at, string message) => errors.Add(new(mainFile, jsonPath + at, message));

        var protocols = ListenerProtocols.Parse(listen.Protocols, https: true, out var protocolError);
        if (protocols is null) Error(".Protocols", protocolError);
        var sslProtocols = ParseMinVersion(listen.MinTlsVersion, out var versionError);
        if (sslProtocols is null) Error(".MinTlsVersion", versionError);
        var suites = new List<TlsCipherSuite>();
        var cipherSuites = listen.CipherSuites ?? [];
        for (int i = 0; i < cipherSuites.Count; i++)
        {
            if (Enum.TryParse<TlsCipherSuite>(cipherSuites[i], ignoreCase: false, out var suite) && Enum.IsDefined(suite)) suites.Add(suite);
            else Error($".CipherSuites[{i}]", $"'{cipherSuites[i]}' is not an IANA cipher suite name such as \"TLS_AES_128_GCM_SHA256\" or \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"");
        }
        var clientCertificates = LoadClientCertificates(listen, baseDirectory, Error);

        SniCertificate? fallback = null;
        if (listen.Certificate is { Length: > 0 } own)
        {
            var pem = PemCertificate.TryLoad(own, listen.CertificateKey, baseDirectory, mainFile, jsonPath, errors);
            if (pem is not null) fallback = new SniCertificate(pem, []);
        }
        else if ((listen.Certificates ?? []).Count == 0)
            Error(".Certificate", "an https listener needs a PEM certificate file (and CertificateKey unless the key is in the same file), or a Certificates list");
        else if (listen.CertificateKey is not null)
            Error(".CertificateKey", "CertificateKey belongs with Certificate");

        var byName = new List<SniCertificate>();
        var claimedBy = new Dictionary<string, int>(StringComparer.Ordinal);
        var entries = listen.Certificates ?? [];
        for (int i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            var at = $"{jsonPath}.Certificates[{i}]";
            if (entry is null)
            {
                errors.Add(new(mainFile, at, "must be an object such as { \"Certificate\": \"a.pem\", \"CertificateKey\": \"a.key\", \"Hosts\": [ \"a.example\" ] }"));
                continue;
            }
            var hosts = new List<string>();
            var configuredHosts = entry.Hosts ?? [];
            for (int h = 0; h < configuredHosts.Count; h++)
            {
                var host = HostPattern.Normalize(configuredHosts[h], out var hostError);
                if (host is null) errors.Add(new(mainFile, $"{at}.Hosts[{h}]", $"'{configuredHosts[h]}' {hostError}"));
                else if (claimedBy.TryGetValue(host, out var first))
                    errors.Add(new(mainFile, $"{at}.Hosts[{h}]", $"'{host}' is already listed by Certificates[{first}]"));
                else
                {
                    claimedBy[host] = i;
                    hosts.Add(host);
                }
            }
            if (string.IsNullOrWhiteSpace(entry.Certificate))
            {
                errors.Add(new(mainFile, at + ".Certificate", "names the PEM certificate file"));
                continue;
            }
            var pem = PemCertificate.TryLoad(entry.Certificate, entry.CertificateKey, baseDirectory, mainFile, at, errors);
            if (pem is null) continue;
            // Without Hosts, the certificate's own names choose it (as HAProxy's crt-list does); a name already taken stays with the first.
            if (configuredHosts.Count == 0)
                foreach (var name in pem.DnsNames())
                    if (HostPattern.Normalize(name, out _) is { } host && !claimedBy.ContainsKey(host)) hosts.Add(host);
            byName.Add(new SniCertificate(pem, hosts));
        }
        fallback ??= byName.FirstOrDefault();

        if (errors.Count > before || fallback is null) return null;
        return new ListenerTlsSettings(protocols!.Value, sslProtocols!.Value, suites, clientCertificates, listen.OcspStapling, fallback, byName);
    }

    /// <summary>Errors for TLS keys on an http:// listener, which has no use for them.</summary>
    public static void CheckUnused(ListenerOptions listen, string mainFile, string jsonPath, List<ConfigError> errors)
    {
        void Unused(string key) => errors.Add(new(mainFile, $"{jsonPath}.{key}", "TLS settings are only used by https:// listeners"));
        if (listen.Certificate is not null) Unused("Certificate");
        if (listen.CertificateKey is not null) Unused("CertificateKey");
        if (listen.Certificates is { Count: > 0 }) Unused("Certificates");
        if (listen.MinTlsVersion is not null) Unused("MinTlsVersion");
        if (listen.CipherSuites is { Count: > 0 }) Unused("CipherSuites");
        if (listen.ClientCertificate is not null) Unused("ClientCertificate");
        if (listen.ClientCa is not null) Unused("ClientCa");
        if (listen.OcspStapling) Unused("OcspStapling");
    }

    /// <summary>TLS 1.2 and 1.3 (nginx's default ssl_protocols since 1.23.4), or 1.3 only.</summary>
    private static SslProtocols? ParseMinVersion(string? value, out string error)
    {
        error = "";
        var version = value?.Trim();
        if (version is not null && version.StartsWith("TLSv", StringComparison.OrdinalIgnoreCase)) version = version[4..];
        switch (version)
        {
            case null or "1.2": return SslProtocols.Tls12 | SslProtocols.Tls13;
            case "1.3": return SslProtocols.Tls13;
            case "1.0" or "1.1":
                error = "TLS 1.0 and 1.1 are not offered (deprecated by RFC 8996): use \"1.2\" or \"1.3\"";
                return null;
            default:
                error = $"'{value}' is not a TLS version: use \"1.2\" or \"1.3\"";
                return null;
        }
    }

    private static ClientCertificateValidator? LoadClientCertificates(ListenerOptions listen, string baseDirectory, Action<string, string> error)
    {
        var modeText = listen.ClientCertificate?.Trim();
        ClientCertificateMode mode;
        if (modeText is null || modeText.Equals("off", StringComparison.OrdinalIgnoreCase)) mode = ClientCertificateMode.Off;
        else if (modeText.Equals("optional", StringComparison.OrdinalIgnoreCase)) mode = ClientCertificateMode.Optional;
        else if (modeText.Equals("required", StringComparison.OrdinalIgnoreCase) || modeText.Equals("on", StringComparison.OrdinalIgnoreCase)) mode = ClientCertificateMode.Required;
        else
        {
            error(".ClientCertificate", $"'{modeText}' is not a mode: use \"off\", \"optional\" or \"required\"");
            return null;
        }
        if (mode == ClientCertificateMode.Off)
        {
            if (listen.ClientCa is not null) error(".ClientCa", "is only used with \"ClientCertificate\": \"optional\" or \"required\"");
            return null;
        }
        if (string.IsNullOrWhiteSpace(listen.ClientCa))
        {
            error(".ClientCa", "client certificates need the PEM file of the CAs they must chain to");
            return null;
        }
        var path = Path.GetFullPath(listen.ClientCa, baseDirectory);
        var cas = new X509Certificate2Collection();
        try
        {
            cas.ImportFromPemFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            error(".ClientCa", $"cannot load the CA certificates: {e.Message} ({path})");
            return null;
        }
        if (cas.Count == 0)
        {
            error(".ClientCa", $"no PEM certificate in {path}");
            return null;
        }
        return new ClientCertificateValidator(mode, cas);
    }
}
