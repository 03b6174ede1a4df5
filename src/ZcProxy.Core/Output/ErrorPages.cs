using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Output;

/// <summary>
/// The body of every error response ZcProxy makes itself (502/503/504 of a failed forward or a refused try, 413, and the
/// 403/404/405 of routes and static files), beside <see cref="BodyOutcomeReport"/>, which decides the status of a failed
/// body: the operator's page when one is configured for that status (nginx <c>error_page</c>), the cluster's before the
/// proxy's, else a one-line plain-text explanation. Upstream responses are never replaced (nginx's default,
/// <c>proxy_intercept_errors off</c>). Pages are read when a configuration is applied (start, reload), not per request.
/// </summary>
internal sealed partial class ErrorPages(RuntimeOptions options, IServiceProvider services, ILogger<ErrorPages> log)
{
    private readonly ConditionalWeakTable<ZcProxyOptions, Compiled> _compiled = [];

    /// <summary>Answers <paramref name="status"/> with its page, or with "STATUS Reason: detail".</summary>
    public Task WriteAsync(HttpContext context, int status, string detail)
    {
        var response = context.Response;
        response.StatusCode = status;
        var page = Find(context, status);
        var body = page?.Body ?? Encoding.UTF8.GetBytes($"{status} {Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status)}: {detail}\n");
        response.ContentType = page?.ContentType ?? "text/plain; charset=utf-8";
        response.ContentLength = body.Length;
        if (HttpMethods.IsHead(context.Request.Method)) return Task.CompletedTask;
        return response.Body.WriteAsync(body).AsTask(); // a client that left makes this a no-op, not an exception
    }

    private ErrorPage? Find(HttpContext context, int status)
    {
        var compiled = _compiled.GetValue(options.Current, Compile);
        if (context.Features.Get<IReverseProxyFeature>()?.Cluster?.Config is { Metadata.Count: > 0 } cluster
            && compiled.Clusters.GetOrAdd(cluster, c => Load(ErrorPageSpec.FromClusterMetadata(c.Metadata!), $"cluster '{c.ClusterId}'")).TryGetValue(status, out var page))
            return page;
        return compiled.Proxy.GetValueOrDefault(status);
    }

    private Compiled Compile(ZcProxyOptions current) => new(Load(current.ErrorPages, "ErrorPages"));

    /// <summary>Reads the pages of one table; `check` proved them readable, so a failure here (a file removed since) is logged and the default text stands.</summary>
    private Dictionary<int, ErrorPage> Load(IEnumerable<KeyValuePair<string, string>> specs, string owner)
    {
        var baseDirectory = services.GetService<FileConfigProvider>()?.MainFile is { } main ? Path.GetDirectoryName(main)! : Directory.GetCurrentDirectory();
        var pages = new Dictionary<int, ErrorPage>();
        foreach (var (statuses, value) in specs)
        {
            var page = ErrorPageSpec.Load(value, baseDirectory, out var error);
            if (page is null) { LogPageUnusable(log, owner, statuses, error ?? ""); continue; }
            foreach (var status in ErrorPageSpec.ParseStatuses(statuses, out _) ?? []) pages[status] = page;
        }
        return pages;
    }

    private sealed record Compiled(Dictionary<int, ErrorPage> Proxy)
    {
        /// <summary>By cluster config instance: a reload that keeps a cluster unchanged still reads its pages again (a new options instance).</summary>
        public ConcurrentDictionary<ClusterConfig, Dictionary<int, ErrorPage>> Clusters { get; } = new(ReferenceEqualityComparer.Instance);
    }

    [LoggerMessage(EventId = 3020, Level = LogLevel.Warning, Message = "error pages of {Owner}: '{Statuses}' is not used, the default text is sent instead: {Error}")]
    private static partial void LogPageUnusable(ILogger logger, string owner, string statuses, string error);
}

/// <summary>An error page ready to send.</summary>
internal sealed record ErrorPage(byte[] Body, string ContentType);

/// <summary>
/// How error pages are written in the configuration, for `check` and for <see cref="ErrorPages"/>: the main file's
/// <c>"ErrorPages": { "502 503 504": "errors/50x.html", "404": "text:nothing here" }</c> (statuses separated by spaces or
/// commas, as nginx's <c>error_page 502 503 504 /50x.html</c>) and cluster Metadata <c>"ErrorPage502": "..."</c>. A value is
/// a file (relative to the main file; Content-Type by its extension) or <c>text:</c> and the text itself (text/plain).
/// </summary>
internal static class ErrorPageSpec
{
    public const string ClusterKeyPrefix = "ErrorPage";
    public const string TextPrefix = "text:";
    public const long MaxFileSize = 1 << 20;
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    /// <summary>The statuses of a key ("502 503 504", "404"); null with <paramref name="error"/> when one is not 400-599.</summary>
    public static int[]? ParseStatuses(string key, out string? error)
    {
        error = null;
        var parts = key.Split([' ', ',', '\t'], StringSplitOptions.RemoveEmptyEntries);
        var statuses = new List<int>();
        foreach (var part in parts)
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var status) || status is < 400 or > 599)
            {
                error = $"'{part}' is not an error status (400-599)";
                return null;
            }
            statuses.Add(status);
        }
        if (statuses.Count == 0) error = "names no status (e.g. \"502 503 504\")";
        return statuses.Count == 0 ? null : [.. statuses];
    }

    /// <summary>Cluster Metadata "ErrorPage502": "..." as ("502", "...") pairs.</summary>
    public static IEnumerable<KeyValuePair<string, string>> FromClusterMetadata(IReadOnlyDictionary<string, string> metadata)
        => metadata.Where(kv => kv.Key.StartsWith(ClusterKeyPrefix, StringComparison.OrdinalIgnoreCase))
                   .Select(kv => KeyValuePair.Create(kv.Key[ClusterKeyPrefix.Length..], kv.Value));

    /// <summary>The page a value names; null with <paramref name="error"/> when the file cannot be used.</summary>
    public static ErrorPage? Load(string value, string baseDirectory, out string? error)
    {
        error = null;
        if (value.StartsWith(TextPrefix, StringComparison.Ordinal))
            return new ErrorPage(Encoding.UTF8.GetBytes(value[TextPrefix.Length..]), "text/plain; charset=utf-8");
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "must name a file, or be \"text:\" followed by the text";
            return null;
        }
        var path = Path.Combine(baseDirectory, value);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) error = $"the file '{path}' does not exist";
            else if (info.Length > MaxFileSize) error = $"the file '{path}' is larger than 1 MiB";
            else return new ErrorPage(File.ReadAllBytes(path), ContentTypeOf(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = $"cannot read '{path}': {e.Message}";
        }
        return null;
    }

    private static string ContentTypeOf(string path)
    {
        if (!ContentTypes.TryGetContentType(path, out var type)) return "text/html; charset=utf-8";
        return type.StartsWith("text/", StringComparison.Ordinal) ? type + "; charset=utf-8" : type;
    }
}
