using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// `check` and reload validation of <c>Telemetry.Otlp</c>: an http(s) endpoint URL, a known protocol, a sample ratio
/// between 0 and 1, sane intervals and header names and values an HTTP request can carry.
/// </summary>
internal sealed class TelemetryConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        if (config.Options.Telemetry?.Otlp is not { } otlp) yield break;
        var file = config.Files[0];
        const string At = "$.Telemetry.Otlp";

        if (!Uri.TryCreate(otlp.Endpoint, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https") || endpoint.Host.Length == 0)
            yield return new(file, $"{At}.Endpoint", $"'{otlp.Endpoint}' is not an http:// or https:// URL such as \"http://127.0.0.1:4318\" (the collector's base URL)");
        else if (endpoint.Query.Length > 0 || endpoint.Fragment.Length > 0)
            yield return new(file, $"{At}.Endpoint", $"'{otlp.Endpoint}' must not have a query or fragment (the collector's base URL, e.g. \"http://127.0.0.1:4318\")");
        if (OtlpExport.ParseProtocol(otlp.Protocol) is null)
            yield return new(file, $"{At}.Protocol", $"'{otlp.Protocol}' is not \"{OtlpExport.HttpProtobuf}\" or \"{OtlpExport.Grpc}\"");
        if (double.IsNaN(otlp.SampleRatio) || otlp.SampleRatio is < 0 or > 1)
            yield return new(file, $"{At}.SampleRatio", $"{otlp.SampleRatio} is not between 0 and 1 (1 records every trace, 0.1 one in ten)");
        if (otlp.MetricsInterval < TimeSpan.FromMilliseconds(100) || otlp.MetricsInterval > Duration.MaxTimeout)
            yield return new(file, $"{At}.MetricsInterval", $"must be between 100ms and {Duration.MaxTimeoutText}");
        var errors = new List<ConfigError>();
        OptionsCheck.Timeout(otlp.Timeout, $"{At}.Timeout", (path, message) => errors.Add(new(file, path, message)));
        foreach (var e in errors) yield return e;
        if (string.IsNullOrWhiteSpace(otlp.ServiceName))
            yield return new(file, $"{At}.ServiceName", "must not be empty");
        foreach (var (name, value) in otlp.Headers)
        {
            if (name.Length == 0 || !name.All(IsTokenChar))
                yield return new(file, $"{At}.Headers", $"'{name}' is not a valid HTTP header name");
            else if (value.Any(c => c is < ' ' and not '\t' or '\x7F'))
                yield return new(file, $"{At}.Headers.{name}", "must not contain control characters (a line break would end the header)");
            else if (value.Contains(',', StringComparison.Ordinal))
                yield return new(file, $"{At}.Headers.{name}", "must not contain a comma (the OpenTelemetry SDK's header list is comma-separated; send one value per header)");
        }
    }

    /// <summary>RFC 9110 token characters (header field names).</summary>
    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);
}
