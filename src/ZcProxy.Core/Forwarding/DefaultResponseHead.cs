using System.Collections.Frozen;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The upstream's response fields copied to Kestrel's response for a route with the default transforms
/// (<see cref="DefaultTransforms"/>): what YARP's default response copy and <see cref="ConnectionOptionsTransforms"/>
/// leave when run over an HttpResponseMessage (a test compares the two), without building that message: the fields
/// in the order it keeps them (its own, then its content's), each under the name it writes, without YARP's
/// hop-by-hop list and the fields the upstream's Connection header names; a Strict-Transport-Security the proxy has
/// already set is kept; a "Content-Length: 0" on a response that cannot have a body is dropped.
/// </summary>
internal static class DefaultResponseHead
{
    private static readonly FrozenSet<string> NotCopied = new[]
    {
        "Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "Proxy-Connection", "Proxy-Authenticate",
        "Proxy-Authentication-Info", "Proxy-Authorization", "Proxy-Features", "Proxy-Instruction", "Security-Scheme",
        "ALPN", "Close", "HTTP2-Settings", "Upgrade-Insecure-Requests", "TE", "Alt-Svc",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    public static void Copy(HttpResponse response, ResponseHead head)
    {
        var destination = response.Headers;
        var fields = head.Headers;
        bool keepProxySts = !StringValues.IsNullOrEmpty(destination.StrictTransportSecurity);
        CopyPlace(destination, fields, HeaderPlace.Headers, keepProxySts);
        CopyPlace(destination, fields, HeaderPlace.Content, keepProxySts);

        if (head.StatusCode is (>= 100 and < 200) or 204 or 205 && LengthIsZero(fields)) destination.ContentLength = null;
        RemoveConnectionOptions(destination, fields);
    }

    private static void CopyPlace(IHeaderDictionary destination, IReadOnlyList<KeyValuePair<string, string>> fields, HeaderPlace place, bool keepProxySts)
    {
        for (int i = 0; i < fields.Count; i++)
        {
            var (name, value) = fields[i];
            if (NotCopied.Contains(name)) continue;
            var kind = HeaderClassifier.Classify(name);
            if (kind.InResponse != place) continue;
            if (keepProxySts && kind.NameFor(name).Equals("Strict-Transport-Security", StringComparison.OrdinalIgnoreCase)) continue;
            var written = kind.NameFor(name);
            destination[written] = StringValues.Concat(destination[written], value);
        }
    }

    /// <summary>The upstream's Content-Length reads "0" as one field (YARP compares the joined values with "0").</summary>
    private static bool LengthIsZero(IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        int count = 0;
        bool zero = false;
        for (int i = 0; i < fields.Count; i++)
        {
            if (!fields[i].Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) continue;
            count++;
            zero = fields[i].Value == "0";
        }
        return count == 1 && zero;
    }

    private static void RemoveConnectionOptions(IHeaderDictionary destination, IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        StringValues connection = default;
        for (int i = 0; i < fields.Count; i++)
            if (fields[i].Key.Equals("Connection", StringComparison.OrdinalIgnoreCase)) connection = StringValues.Concat(connection, fields[i].Value);
        if (!ConnectionOptionsTransforms.MayNameFields(connection)) return;
        foreach (var name in ConnectionOptionsTransforms.Options(connection)) destination.Remove(name);
    }
}
