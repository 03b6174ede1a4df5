using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using ZcProxy.Core.Transport.Http1;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The upstream's response fields copied to Kestrel's response for a route with the default transforms
/// (<see cref="DefaultTransforms"/>): what YARP's default response copy and <see cref="ConnectionOptionsTransforms"/>
/// leave when run over an HttpResponseMessage (a test compares the two), without building that message: the fields
/// in the order it keeps them (its own, then its content's), each under the name it writes, without YARP's
/// hop-by-hop list and the fields the upstream's Connection header names; a Strict-Transport-Security the proxy has
/// already set is kept; a "Content-Length: 0" on a response that cannot have a body is dropped.
/// What to copy is worked out once per head (<see cref="DefaultResponseFields"/>, kept with it): a keep-alive
/// connection hands out the same head response after response (<see cref="ResponseHeadParser"/>).
/// </summary>
internal static class DefaultResponseHead
{
    public static void Copy(HttpResponse response, ResponseHead head)
    {
        var fields = head.DefaultFields ??= Plan(head);
        var destination = response.Headers;
        // The own HTTP/1.1 layer takes the copied fields as they are, while the response has none yet: nothing copied,
        // and their bytes encoded once per head (Http1ResponseHeaders; whoever changes a field later gets a dictionary).
        if (fields.PassedThrough is { } block && destination is Http1ResponseHeaders own && own.TryPassThrough(block)) return;
        bool keepProxySts = fields.HasStrictTransportSecurity && !StringValues.IsNullOrEmpty(destination.StrictTransportSecurity);
        // Usually nothing is set yet, and the copied names are distinct (the plan grouped them): a set each, no lookup.
        bool empty = destination.Count == 0;
        foreach (var field in fields.Copied)
        {
            if (keepProxySts && field.IsStrictTransportSecurity) continue;
            if (empty) { destination[field.Name] = field.Values; continue; }
            var present = destination[field.Name];
            destination[field.Name] = present.Count == 0 ? field.Values : StringValues.Concat(present, field.Values);
        }
        if (fields.DropsZeroLength) destination.ContentLength = null;
        foreach (var name in fields.Removed) destination.Remove(name);
    }

    /// <summary>The head's fields as they are copied: grouped by the name written, the message's own place first, then its content's.</summary>
    private static DefaultResponseFields Plan(ResponseHead head)
    {
        var copied = new List<DefaultResponseFields.Field>(head.Headers.Count);
        AddPlace(copied, head.Headers, HeaderPlace.Headers);
        AddPlace(copied, head.Headers, HeaderPlace.Content);
        string[] removed = [];
        var connection = ConnectionValues(head.Headers);
        if (ConnectionOptionsTransforms.MayNameFields(connection)) removed = [.. ConnectionOptionsTransforms.Options(connection)];
        return new DefaultResponseFields(
            [.. copied],
            DropsZeroLength: head.StatusCode is (>= 100 and < 200) or 204 or 205 && LengthIsZero(head.Headers),
            removed);
    }

    private static void AddPlace(List<DefaultResponseFields.Field> copied, IReadOnlyList<KeyValuePair<string, string>> fields, HeaderPlace place)
    {
        for (int i = 0; i < fields.Count; i++)
        {
            var (name, value) = fields[i];
            if (HopByHopFields.Names.Contains(name)) continue;
            var kind = HeaderClassifier.Classify(name);
            if (kind.InResponse != place) continue;
            var written = kind.NameFor(name);
            // Repeated names (any case: the response's dictionary ignores it) are joined as the dictionary would join them.
            int same = copied.FindIndex(f => f.Name.Equals(written, StringComparison.OrdinalIgnoreCase));
            if (same >= 0) copied[same] = copied[same] with { Values = StringValues.Concat(copied[same].Values, value) };
            else copied.Add(new(written, value, written.Equals("Strict-Transport-Security", StringComparison.OrdinalIgnoreCase)));
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

    private static StringValues ConnectionValues(IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        StringValues connection = default;
        for (int i = 0; i < fields.Count; i++)
            if (fields[i].Key.Equals("Connection", StringComparison.OrdinalIgnoreCase)) connection = StringValues.Concat(connection, fields[i].Value);
        return connection;
    }
}

/// <summary>What <see cref="DefaultResponseHead"/> copies of one upstream head, worked out once and kept with it.</summary>
/// <param name="Copied">The fields copied, by the name written, in the order they are set.</param>
/// <param name="DropsZeroLength">A "Content-Length: 0" on a response that cannot have a body: removed after the copy.</param>
/// <param name="Removed">The names the upstream's Connection header lists (hop-by-hop): removed after the copy.</param>
internal sealed record DefaultResponseFields(DefaultResponseFields.Field[] Copied, bool DropsZeroLength, string[] Removed)
{
    public bool HasStrictTransportSecurity { get; } = Array.Exists(Copied, f => f.IsStrictTransportSecurity);

    /// <summary>
    /// The copied fields as one block, for a response that has no field yet: what the copy into an empty response leaves
    /// (nothing removed after it). Null when the copy removes something (Connection options, a dropped zero length).
    /// </summary>
    public Http1FieldBlock? PassedThrough { get; } = Removed.Length == 0 && !DropsZeroLength
        ? new([.. Array.ConvertAll(Copied, f => new KeyValuePair<string, StringValues>(f.Name, f.Values))])
        : null;

    public readonly record struct Field(string Name, StringValues Values, bool IsStrictTransportSecurity);
}
