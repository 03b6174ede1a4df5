namespace ZcProxy.Core.Tls;

/// <summary>
/// A server name a certificate is chosen for: an exact DNS name ("a.example") or a wildcard for one label
/// ("*.a.example" matches "www.a.example", not "a.example" nor "x.www.a.example"), as certificates themselves match
/// (RFC 6125). Names are compared without case; internationalised names are written in their xn-- form.
/// </summary>
internal static class HostPattern
{
    /// <summary>The pattern lower-cased, or null with the reason when it is not a valid name.</summary>
    public static string? Normalize(string? pattern, out string error)
    {
        error = "";
        var name = (pattern ?? "").Trim().TrimEnd('.').ToLowerInvariant();
        var labels = name.StartsWith("*.", StringComparison.Ordinal) ? name[2..] : name;
        if (name.Length is 0 or > 253) error = "must be a DNS name such as \"a.example\" or \"*.a.example\"";
        else if (labels.Contains('*')) error = "a wildcard must be the whole first label (\"*.a.example\")";
        else if (!labels.Split('.').All(IsLabel)) error = "must be a DNS name of letters, digits and hyphens (internationalised names in their xn-- form)";
        return error.Length == 0 ? name : null;
    }

    /// <summary>The wildcard's parent ("a.example" for "*.a.example"), or null for an exact name.</summary>
    public static string? WildcardParent(string normalized) => normalized.StartsWith("*.", StringComparison.Ordinal) ? normalized[2..] : null;

    private static bool IsLabel(string label)
        => label.Length is > 0 and <= 63 && label[0] != '-' && label[^1] != '-' && label.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-');
}
