using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// Sends the request path upstream as the client encoded it when the route's transforms leave the path alone, as
/// nginx's proxy_pass without a URI does. YARP rebuilds the target from the decoded path, where Kestrel keeps "%2F"
/// as those three characters (a slash there would change the path's segments), so YARP encodes its '%' again and
/// the upstream gets "%252F"; and System.Uri unescapes "%41" to "A". Applied to every route, last among its transforms.
/// The raw path is used only when it provably is the path that was routed: decoded the way Kestrel decodes (all but
/// %2F, dot segments removed) it must equal the request's path. Otherwise (a transform changed the path, a path base,
/// an absolute-form target) YARP's target stands.
/// </summary>
internal sealed class RawPathTransforms : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context) { }

    public void ValidateCluster(TransformClusterValidationContext context) { }

    public void Apply(TransformBuilderContext context) => context.RequestTransforms.Add(new RequestFuncTransform(UseRawPath));

    private static ValueTask UseRawPath(RequestTransformContext context)
    {
        var request = context.HttpContext.Request;
        if (context.ProxyRequest.RequestUri is not null) return ValueTask.CompletedTask; // a transform chose the target itself
        if (!string.Equals(context.Path.Value, request.Path.Value, StringComparison.Ordinal)) return ValueTask.CompletedTask;
        if (RawPath(request, context.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget) is not { } rawPath)
            return ValueTask.CompletedTask;

        var prefix = context.DestinationPrefix.EndsWith('/') ? context.DestinationPrefix[..^1] : context.DestinationPrefix;
        var target = prefix + rawPath + context.Query.QueryString.ToUriComponent();
        // Without canonicalization System.Uri keeps the path and query exactly as given (it would unescape "%41").
        if (Uri.TryCreate(target, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }, out var uri))
            context.ProxyRequest.RequestUri = uri;
        return ValueTask.CompletedTask;
    }

    /// <summary>The path part of the raw target, dot segments removed, when it decodes to the request's path; else null.</summary>
    internal static string? RawPath(HttpRequest request, string? rawTarget)
    {
        if (request.PathBase.HasValue || string.IsNullOrEmpty(rawTarget) || rawTarget[0] != '/') return null;
        int query = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = RemoveDotSegments(query < 0 ? rawTarget : rawTarget[..query]);
        return string.Equals(DecodeKeepingSlashes(rawPath), request.Path.Value, StringComparison.Ordinal) ? rawPath : null;
    }

    /// <summary>RFC 3986 §5.2.4 on the raw path; "%2E" counts as a dot, "%2F" as no separator (Kestrel decodes the one, not the other).</summary>
    internal static string RemoveDotSegments(string rawPath)
    {
        var segments = rawPath.Split('/');
        bool anyDot = false;
        foreach (var s in segments) anyDot |= IsDot(s) || IsDotDot(s);
        if (!anyDot) return rawPath;
        var kept = new List<string>(segments.Length) { "" };
        for (int i = 1; i < segments.Length; i++)
        {
            bool last = i == segments.Length - 1;
            if (IsDot(segments[i])) { if (last) kept.Add(""); }
            else if (IsDotDot(segments[i]))
            {
                if (kept.Count > 1) kept.RemoveAt(kept.Count - 1);
                if (last) kept.Add("");
            }
            else kept.Add(segments[i]);
        }
        return kept.Count == 1 ? "/" : string.Join('/', kept);
    }

    private static bool IsDot(string segment) => segment is "." || segment.Equals("%2e", StringComparison.OrdinalIgnoreCase);

    private static bool IsDotDot(string segment) => segment.Replace("%2e", ".", StringComparison.OrdinalIgnoreCase) == "..";

    /// <summary>Percent-decodes (UTF-8) everything but "%2F", which Kestrel leaves encoded in the path.</summary>
    private static string DecodeKeepingSlashes(string rawPath)
    {
        if (!rawPath.Contains('%', StringComparison.Ordinal)) return rawPath;
        var sb = new StringBuilder(rawPath.Length);
        int start = 0;
        while (true)
        {
            int slash = rawPath.IndexOf("%2F", start, StringComparison.OrdinalIgnoreCase);
            var piece = slash < 0 ? rawPath[start..] : rawPath[start..slash];
            sb.Append(Uri.UnescapeDataString(piece));
            if (slash < 0) return sb.ToString();
            sb.Append(rawPath, slash, 3);
            start = slash + 3;
        }
    }
}
