using System.Net.Security;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Tls;

/// <summary>
/// The TLS settings every https listener serves, one <see cref="ListenerTls"/> per Listen entry, read by each
/// handshake (Kestrel's TlsHandshakeCallbackOptions) and swapped atomically when a reload applies a configuration:
/// SIGHUP, an edited config file, or a changed PEM file (the config watcher watches those too, so a certificate
/// certbot renews is served without a restart). The configuration was validated before it is applied, PEM files
/// included; if a file changed again in between and no longer loads, the listener keeps what it served and the log
/// says why.
/// </summary>
internal sealed partial class TlsCertificateStore
{
    private readonly string _mainFile;
    private readonly string[] _urls;
    private readonly ListenerTls?[] _listeners;
    private readonly ILogger _log;

    /// <param name="settings">Per Listen entry, the settings <see cref="LoadAll"/> read for the start (null: http listener).</param>
    public TlsCertificateStore(string mainFile, ZcProxyOptions options, IReadOnlyList<ListenerTlsSettings?> settings, ILogger<TlsCertificateStore> log)
    {
        _mainFile = mainFile;
        _urls = options.Listen.Select(l => l.Url).ToArray();
        _listeners = settings.Select(s => s is null ? null : ListenerTls.Build(s)).ToArray();
        _log = log;
        for (int i = 0; i < _listeners.Length; i++)
            if (_listeners[i] is { } tls) LogServing(i, tls);
    }

    /// <summary>Every https listener's settings (null entries for http ones), or the errors that stop the start.</summary>
    public static ListenerTlsSettings?[] LoadAll(string mainFile, ZcProxyOptions options, List<ConfigError> errors)
    {
        var settings = new ListenerTlsSettings?[options.Listen.Count];
        for (int i = 0; i < options.Listen.Count; i++)
            if (IsHttps(options.Listen[i])) settings[i] = ListenerTlsSettings.TryLoad(options.Listen[i], mainFile, $"$.Listen[{i}]", errors);
        return settings;
    }

    /// <summary>The handshake callback of listener <paramref name="index"/>: the options for the name the client asked for.</summary>
    public TlsHandshakeCallbackOptions HandshakeOptions(int index) => new()
    {
        OnConnection = context => ValueTask.FromResult(Select(index, context.ClientHelloInfo.ServerName)),
    };

    public SslServerAuthenticationOptions Select(int index, string? serverName)
        => (Volatile.Read(ref _listeners[index]) ?? throw new InvalidOperationException($"listener {index} is not an https listener")).Select(serverName);

    public ListenerTls? Current(int index) => Volatile.Read(ref _listeners[index]);

    /// <summary>
    /// Applies the TLS settings of a configuration that a reload just made current. Listeners are matched by position
    /// and URL (a changed Listen list needs a restart, which the reload already warned about).
    /// </summary>
    public void Apply(ZcProxyOptions next)
    {
        for (int i = 0; i < _urls.Length && i < next.Listen.Count; i++)
        {
            var current = Volatile.Read(ref _listeners[i]);
            if (current is null || next.Listen[i].Url != _urls[i]) continue;
            var errors = new List<ConfigError>();
            var settings = ListenerTlsSettings.TryLoad(next.Listen[i], _mainFile, $"$.Listen[{i}]", errors);
            if (settings is null)
            {
                foreach (var error in errors) LogKept(_urls[i], error.ToString());
                continue;
            }
            var tls = ListenerTls.Build(settings);
            Volatile.Write(ref _listeners[i], tls);
            if (!tls.Certificates.SequenceEqual(current.Certificates, ServedCertificateComparer.Instance)) LogServing(i, tls);
        }
    }

    private static bool IsHttps(ListenerOptions listen) => ListenUrl.TryParse(listen.Url, out var url, out _) && url!.IsHttps;

    private void LogServing(int index, ListenerTls tls)
    {
        foreach (var certificate in tls.Certificates)
        {
            LogCertificate(_urls[index], certificate);
            if (certificate.NotAfter < DateTime.UtcNow) LogExpired(_urls[index], certificate.Subject, certificate.NotAfter);
        }
    }

    private sealed class ServedCertificateComparer : IEqualityComparer<ServedCertificate>
    {
        public static readonly ServedCertificateComparer Instance = new();
        public bool Equals(ServedCertificate? x, ServedCertificate? y)
            => x is not null && y is not null && x.Thumbprint == y.Thumbprint && x.Hosts.SequenceEqual(y.Hosts);
        public int GetHashCode(ServedCertificate obj) => obj.Thumbprint.GetHashCode(StringComparison.Ordinal);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Listener}: serving certificate {Certificate}")]
    private partial void LogCertificate(string listener, ServedCertificate certificate);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "{Listener}: certificate {Subject} expired at {NotAfter:u}; clients will refuse it")]
    private partial void LogExpired(string listener, string subject, DateTime notAfter);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "{Listener}: TLS settings not reloaded, the previous certificates stay in use: {Error}")]
    private partial void LogKept(string listener, string error);
}
