using ZcProxy.Core.Configuration;
using ZcProxy.Core.Tls;

namespace ZcProxy.Hosting;

/// <summary>
/// What a start needs from the machine beyond a valid configuration, proven before anything listens (nginx does the
/// same: it creates its cache paths and opens its logs before it binds). `check` cannot prove these: it may run as
/// another user than the service. Each failure is a <see cref="StartupException"/> naming file, JSON path and reason.
/// </summary>
internal static class StartupChecks
{
    /// <summary>The cache directory exists (created if missing, as nginx's proxy_cache_path is) and takes new files.</summary>
    public static void CacheDirectory(string mainFile, string root)
    {
        try
        {
            Directory.CreateDirectory(root);
            // DeleteOnClose: the probe never outlives this call, so the cache loader never meets it.
            using var probe = new FileStream(Path.Combine(root, $".zcproxy-write-probe-{Environment.ProcessId}"),
                FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException(new ConfigError(mainFile, "$.Cache.Path", $"cannot use '{root}' as the cache directory: {e.Message}"), e);
        }
    }

    /// <summary>An access-log file (not "stdout" or "off") opens for appending; it is created if missing.</summary>
    public static void AccessLog(string mainFile, AccessLogOptions accessLog)
    {
        var path = accessLog.Path;
        if (string.Equals(path, "stdout", StringComparison.OrdinalIgnoreCase) || string.Equals(path, "off", StringComparison.OrdinalIgnoreCase)) return;
        try
        {
            using var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new StartupException(new ConfigError(mainFile, "$.AccessLog.Path", $"cannot open '{path}' for appending: {e.Message}"), e);
        }
    }

    /// <summary>Each https listener's TLS settings with its PEM files read; null entries for plaintext listeners.</summary>
    public static ListenerTlsSettings?[] Tls(string mainFile, ZcProxyOptions options)
    {
        var errors = new List<ConfigError>();
        var settings = TlsCertificateStore.LoadAll(mainFile, options, errors);
        return errors.Count == 0 ? settings : throw new StartupException(errors[0]);
    }
}
