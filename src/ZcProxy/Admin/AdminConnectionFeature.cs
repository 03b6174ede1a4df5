namespace ZcProxy.Admin;

/// <summary>Marks connections accepted on the admin listener, so the admin branch needs no port lookup.</summary>
internal sealed class AdminConnectionFeature
{
    public static readonly AdminConnectionFeature Instance = new();
}
