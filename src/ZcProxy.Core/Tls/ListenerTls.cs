using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ZcProxy.Core.Tls;

/// <summary>What one served certificate is, for logs and for telling a renewed certificate from the same one.</summary>
internal sealed record ServedCertificate(string Subject, string Thumbprint, DateTime NotAfter, IReadOnlyList<string> Hosts)
{
    public override string ToString()
        => $"{Subject} (sha1 {Thumbprint}, valid until {NotAfter:yyyy-MM-dd HH:mm} UTC, for {(Hosts.Count == 0 ? "names without a certificate of their own" : string.Join(", ", Hosts))})";
}

/// <summary>
/// The TLS side of one https listener as served: per certificate, the server authentication options every handshake
/// that picks it uses (certificate with its chain, versions, cipher suites, client certificates, ALPN). Immutable:
/// a reload builds a new one and swaps it in (<see cref="TlsCertificateStore"/>), handshakes under way keep theirs.
/// </summary>
internal sealed class ListenerTls
{
    private readonly SniMap<SslServerAuthenticationOptions> _options;

    private ListenerTls(SniMap<SslServerAuthenticationOptions> options, IReadOnlyList<ServedCertificate> certificates)
    {
        _options = options;
        Certificates = certificates;
    }

    public IReadOnlyList<ServedCertificate> Certificates { get; }

    /// <summary>The options for a handshake whose ClientHello named <paramref name="serverName"/> (null: no SNI).</summary>
    public SslServerAuthenticationOptions Select(string? serverName) => _options.Select(serverName);

    /// <summary>
    /// Builds the served form. With OCSP stapling on, .NET fetches the responder's answer in the background (from the
    /// certificate's AIA address) and staples it once it has one; otherwise the chain is built offline from the PEM file.
    /// </summary>
    public static ListenerTls Build(ListenerTlsSettings settings)
    {
        var alpn = Alpn(settings.Protocols);
        var policy = settings.CipherSuites.Count == 0 ? null
            : OperatingSystem.IsWindows() ? throw new PlatformNotSupportedException("CipherSuites needs OpenSSL (Linux)")
            : new CipherSuitesPolicy(WithTls13Defaults(settings.CipherSuites));
        SslServerAuthenticationOptions OptionsFor(PemCertificate pem) => new()
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(pem.Leaf, pem.Intermediates, offline: !settings.OcspStapling),
            EnabledSslProtocols = settings.SslProtocols,
            CipherSuitesPolicy = policy,
            ClientCertificateRequired = settings.ClientCertificates is not null,
            RemoteCertificateValidationCallback = settings.ClientCertificates is { } validator ? validator.Validate : null,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ApplicationProtocols = alpn,
            AllowRenegotiation = false,
        };

        var fallback = OptionsFor(settings.Default.Pem);
        var exact = new Dictionary<string, SslServerAuthenticationOptions>(StringComparer.OrdinalIgnoreCase);
        var wildcards = new Dictionary<string, SslServerAuthenticationOptions>(StringComparer.OrdinalIgnoreCase);
        var served = new List<ServedCertificate>();
        if (!settings.ByName.Contains(settings.Default)) served.Add(Describe(settings.Default));
        foreach (var certificate in settings.ByName)
        {
            var options = ReferenceEquals(certificate, settings.Default) ? fallback : OptionsFor(certificate.Pem);
            foreach (var host in certificate.Hosts)
            {
                var map = HostPattern.WildcardParent(host) is null ? exact : wildcards;
                map.TryAdd(HostPattern.WildcardParent(host) ?? host, options);
            }
            served.Add(Describe(certificate));
        }
        return new ListenerTls(new SniMap<SslServerAuthenticationOptions>(exact, wildcards, fallback), served);
    }

    /// <summary>
    /// A list naming no TLS 1.3 suite restricts TLS 1.2 only, as nginx's ssl_ciphers does: the TLS 1.3 suites OpenSSL
    /// offers by default are added (.NET would otherwise fail every handshake while TLS 1.3 is enabled).
    /// </summary>
    private static IEnumerable<TlsCipherSuite> WithTls13Defaults(IReadOnlyList<TlsCipherSuite> suites)
        => suites.Any(ListenerTlsSettings.Tls13Suites.Contains) ? suites : suites.Concat(ListenerTlsSettings.Tls13Suites.Take(3));

    private static ServedCertificate Describe(SniCertificate certificate)
        => new(certificate.Pem.Leaf.Subject, certificate.Pem.Leaf.Thumbprint, certificate.Pem.Leaf.NotAfter.ToUniversalTime(), certificate.Hosts);

    private static List<SslApplicationProtocol> Alpn(HttpProtocols protocols) => protocols switch
    {
        HttpProtocols.Http1 => [SslApplicationProtocol.Http11],
        HttpProtocols.Http2 => [SslApplicationProtocol.Http2],
        _ => [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
    };
}
