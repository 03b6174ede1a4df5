using System.Security.Cryptography;
using System.Text;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Admin;

/// <summary>
/// The admin token (<c>Admin.Token</c> or <c>Admin.TokenFile</c>): where it comes from, what a valid one looks like,
/// and the constant-time comparison. `check` and the guard both use this, so what check accepts is what the guard reads.
/// </summary>
internal static class AdminToken
{
    /// <summary>The configured token; null when none is configured. <paramref name="error"/> is set when one is configured but unusable.</summary>
    public static string? Resolve(AdminOptions? admin, string mainFile, out string? error)
    {
        error = null;
        if (admin?.TokenFile is { } file)
        {
            var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(mainFile))!, file);
            string text;
            try { text = File.ReadAllText(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                error = $"cannot read the token file '{path}': {e.Message}";
                return null;
            }
            return Validated(text.Trim(), $"the token file '{path}'", out error);
        }
        return admin?.Token is { } token ? Validated(token, "the token", out error) : null;
    }

    private static string? Validated(string token, string what, out string? error)
    {
        error = token.Length == 0 ? $"{what} is empty"
            : token.Any(c => c is < '!' or > '~') ? $"{what} must be printable ASCII without spaces (it is sent in an Authorization header)"
            : null;
        return error is null ? token : null;
    }

    /// <summary>True when the Authorization header is "Bearer TOKEN" with the expected token, compared in constant time.</summary>
    public static bool Presented(string? authorization, string expected)
    {
        const string scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var presented = authorization.AsSpan(scheme.Length).Trim();
        // Hashing first makes both sides 32 bytes, so neither the comparison's time nor its early exit on a length
        // mismatch says anything about the token.
        Span<byte> a = stackalloc byte[SHA256.HashSizeInBytes], b = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented.ToString()), a);
        SHA256.HashData(Encoding.UTF8.GetBytes(expected), b);
        return CryptographicOperations.FixedTimeEquals(a, b);
    }
}
