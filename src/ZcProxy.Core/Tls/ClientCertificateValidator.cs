using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Core.Tls;

/// <summary>"ClientCertificate" of an https listener (nginx ssl_verify_client).</summary>
internal enum ClientCertificateMode
{
    Off,
    /// <summary>Asked for; a client without one is served, one that sends a certificate must send a valid one.</summary>
    Optional,
    /// <summary>The handshake fails without a valid certificate.</summary>
    Required,
}

/// <summary>
/// Checks a client certificate against the listener's own CAs only (nginx ssl_client_certificate), never the system's
/// trust store: chain to one of them, within its validity, usable for client authentication when it says what it
/// is for. Revocation is not checked (nginx checks it only with ssl_crl).
/// </summary>
internal sealed class ClientCertificateValidator(ClientCertificateMode mode, X509Certificate2Collection trustedCas)
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2", "Client Authentication");

    public ClientCertificateMode Mode => mode;

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? presentedChain, SslPolicyErrors errors)
    {
        if (certificate is null) return mode != ClientCertificateMode.Required;
        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.AddRange(trustedCas);
        policy.RevocationMode = X509RevocationMode.NoCheck;
        policy.DisableCertificateDownloads = true;
        policy.ApplicationPolicy.Add(ClientAuthentication);
        if (presentedChain is not null) policy.ExtraStore.AddRange(presentedChain.ChainPolicy.ExtraStore);
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        try
        {
            return chain.Build(leaf);
        }
        finally
        {
            if (!ReferenceEquals(leaf, certificate)) leaf.Dispose();
            foreach (var element in chain.ChainElements) element.Certificate.Dispose();
        }
    }
}
