using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>What a TLS handshake with the proxy showed the client.</summary>
public sealed record TlsHandshake(string Subject, string Thumbprint, IReadOnlyList<string> SentChain, SslProtocols Protocol, TlsCipherSuite CipherSuite);

/// <summary>A bare TLS client (.NET's SslStream): handshakes, then reports the certificate the server presented.</summary>
public static class TlsProbe
{
    /// <param name="serverName">Sent as SNI; an IP address sends none (as clients do).</param>
    /// <summary>Asserts that the server refuses the handshake (or closes the connection right after it).</summary>
    public static async Task AssertRefusedAsync(int port, string serverName, Action<SslClientAuthenticationOptions>? configure = null)
    {
        var e = await Record.ExceptionAsync(() => HandshakeAsync(port, serverName, configure));
        Assert.True(e is IOException or AuthenticationException, $"expected a refused handshake, got {e?.GetType().Name ?? "an answer"}: {e?.Message}");
    }

    public static async Task<TlsHandshake> HandshakeAsync(int port, string serverName, Action<SslClientAuthenticationOptions>? configure = null)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        await using var ssl = new SslStream(tcp.GetStream());
        X509Certificate2? served = null;
        var sent = new List<string>();
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
            {
                served = certificate is null ? null : new X509Certificate2(certificate);
                if (chain is not null) sent.AddRange(chain.ChainPolicy.ExtraStore.Select(c => c.Subject));
                return true;
            },
        };
        configure?.Invoke(options);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ssl.AuthenticateAsClientAsync(options, timeout.Token);
        // TLS 1.3 refuses a client certificate only after the client's handshake is done: only an answer proves acceptance.
        await ssl.WriteAsync("GET /tls-probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray(), timeout.Token);
        var buffer = new byte[5];
        if (await ssl.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, timeout.Token) < buffer.Length || !buffer.AsSpan().SequenceEqual("HTTP/"u8))
            throw new IOException("the server closed the connection without an HTTP answer");
        using (served)
            return new TlsHandshake(served!.Subject, served.Thumbprint, sent, ssl.SslProtocol, ssl.NegotiatedCipherSuite);
    }
}
