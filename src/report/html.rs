//! The report's pages: `index.html` and one page per cluster, plain HTML with inline CSS
//! and relative links only, so that the folder opens from disk, anywhere, offline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::build::Plan;
use super::figure::WrittenFigure;
use super::layout;
use super::svg::escape;
use super::{FindQuery, ReportError, ReportInput};
use crate::model::find::FindParams;

/// Most folders listed for a cluster, and most file names.
const MAX_FOLDERS: usize = 20;
const MAX_FILES: usize = 200;

/// The figures of a cluster report as written, for the pages to show.
#[derive(Debug, Default)]
pub struct ClusterFigures {
    /// Each embedding figure with its title.
    pub scatters: Vec<(WrittenFigure, String)>,
    pub dendrogram: Option<WrittenFigure>,
    pub scores: Option<WrittenFigure>,
    pub variance: Option<WrittenFigure>,
    pub exif: Option<WrittenFigure>,
    pub unique: Option<WrittenFigure>,
    pub duplicates: Option<WrittenFigure>,
    /// One per cluster with a page, in cluster order.
    pub pages: Vec<WrittenFigure>,
}

/// Writes `index.html` and the cluster pages; returns the pages other than the index.
pub fn write_cluster_pages(
    folder: &Path,
    input: &ReportInput<'_>,
    plan: &Plan,
    figures: &ClusterFigures,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut pages = Vec::new();
    for (cluster, figure) in figures.pages.iter().enumerate() {
        let name = PathBuf::from(format!("cluster-{cluster}.html"));
        let html = cluster_page(input, plan, cluster, figure);
        write(folder, &name, &html)?;
        pages.push(name);
    }
    write(folder, Path::new("index.html"), &index(input, plan, figures))?;
    Ok(pages)
}

/// Writes the `index.html` of a find report and returns its path.
pub fn write_find_page(
    folder: &Path,
    queries: &[FindQuery],
    montages: &[WrittenFigure],
    distribution: &WrittenFigure,
    params: &FindParams,
) -> Result<PathBuf, ReportError> {
    let mut body = String::from("<h1>clustimage find</h1>\n");
    let _ = writeln!(
        body,
        "<p>{} queries. A hit's p-value is the chance that two unrelated library images are \
         at least that close{}.</p>",
        queries.len(),
        params.alpha.map_or(String::new(), |a| format!("; hits have p ≤ {a}"))
    );
    for (query, montage) in queries.iter().zip(montages) {
        let title = format!("Query {}", query.path.display());
        let _ = writeln!(body, "<h2>{}</h2>", escape(&title));
        body += &figure_html(montage, &title);
    }
    body += "<h2>The null distribution</h2>\n";
    body += &figure_html(distribution, "null distribution of distances");
    let path = Path::new("index.html");
    write(folder, path, &document("clustimage find", &body))?;
    Ok(folder.join(path))
}

fn index(input: &ReportInput<'_>, plan: &Plan, figures: &ClusterFigures) -> String {
    let mut sections: Vec<(&str, &str, String)> = Vec::new();
    let mut embedding = String::new();
    for (figure, title) in &figures.scatters {
        embedding += &figure_html(figure, title);
    }
    if !embedding.is_empty() {
        sections.push(("embedding", "Embedding", embedding));
    }
    sections.push(("clusters", "Clusters", cluster_table(input, plan, figures)));
    if let Some(figure) = &figures.unique {
        sections.push(("unique", "Unique images", figure_html(figure, "unique images")));
    }
    if let Some(figure) = &figures.duplicates {
        sections.push(("duplicates", "Duplicates", figure_html(figure, "groups of duplicates")));
    }
    if let Some(figure) = &figures.dendrogram {
        sections.push(("dendrogram", "Dendrogram", figure_html(figure, "dendrogram")));
    }
    if let Some(figure) = &figures.scores {
        sections.push(("choosing-k", "Choosing k", figure_html(figure, "score of each k")));
    }
    if let Some(figure) = &figures.variance {
        sections.push(("pca", "PCA", figure_html(figure, "explained variance")));
    }
    if let Some(figure) = &figures.exif {
        sections.push(("exif", "EXIF", figure_html(figure, "EXIF clusters")));
    }
    let mut body = String::from("<h1>clustimage report</h1>\n");
    body += &summary(input, plan);
    body += "<nav>";
    for (id, heading, _) in &sections {
        let _ = write!(body, "<a href=\"#{id}\">{heading}</a> ");
    }
    body += "</nav>\n";
    for (id, heading, content) in &sections {
        let _ = writeln!(body, "<section id=\"{id}\">\n<h2>{heading}</h2>\n{content}</section>");
    }
    document("clustimage report", &body)
}

fn summary(input: &ReportInput<'_>, plan: &Plan) -> String {
    let params = input.params;
    let mut text = format!(
        "{} images in {} clusters ({} noise), {} files skipped. Features: {}",
        input.paths.len(),
        plan.n_clusters(),
        plan.n_noise,
        input.n_skipped,
        input.model.method.name(),
    );
    if let Some(pca) = &input.model.pca {
        let total: f64 = pca.explained_variance_ratio.iter().sum();
        let _ = write!(
            text,
            " ({} components, {:.1} % of the variance)",
            pca.n_components(),
            total * 100.0
        );
    }
    if !input.model.method.uses_exif() {
        let method = format!("{:?}", params.cluster.method).to_lowercase();
        let _ = write!(text, "; clustering: {method}");
    }
    let _ = write!(text, "; seed {}.", params.cluster.seed);
    format!("<p class=\"summary\">{}</p>\n", escape(&text))
}

fn cluster_table(input: &ReportInput<'_>, plan: &Plan, figures: &ClusterFigures) -> String {
    let mut html = String::new();
    if plan.n_clusters() > figures.pages.len() {
        let _ = writeln!(
            html,
            "<p>The {} largest of {} clusters have a page.</p>",
            figures.pages.len(),
            plan.n_clusters()
        );
    }
    html += "<table>\n<tr><th>cluster</th><th>images</th><th>representative</th>";
    html += "<th>main folder</th></tr>\n";
    for cluster in 0..plan.n_clusters() {
        let id = match cluster < figures.pages.len() {
            true => format!("<a href=\"cluster-{cluster}.html\">cluster {cluster}</a>"),
            false => format!("cluster {cluster}"),
        };
        let representative = layout::file_name(&input.paths[plan.representatives[cluster]]);
        let folders = folders_of(input, plan, cluster);
        let main = folders
            .first()
            .map_or(String::new(), |(folder, n)| format!("{} ({n})", folder.display()));
        let _ = writeln!(
            html,
            "<tr><td>{id}</td><td class=\"number\">{}</td><td>{}</td><td>{}</td></tr>",
            plan.sizes[cluster],
            escape(&representative),
            escape(&main)
        );
    }
    html += "</table>\n";
    html
}

fn folders_of(input: &ReportInput<'_>, plan: &Plan, cluster: usize) -> Vec<(PathBuf, usize)> {
    layout::folder_counts(plan.members[cluster].iter().map(|&idx| input.paths[idx].as_path()))
}

fn cluster_page(
    input: &ReportInput<'_>,
    plan: &Plan,
    cluster: usize,
    figure: &WrittenFigure,
) -> String {
    let size = plan.sizes[cluster];
    let representative = &input.paths[plan.representatives[cluster]];
    let mut body = format!(
        "<p><a href=\"index.html\">back to the report</a></p>\n<h1>Cluster {cluster}</h1>\n\
         <p>{size} images; representative {}.</p>\n",
        escape(&representative.display().to_string())
    );
    body += &figure_html(figure, &format!("images of cluster {cluster}"));
    let folders = folders_of(input, plan, cluster);
    let _ = writeln!(body, "<h2>Folders</h2>\n<table>\n<tr><th>folder</th><th>images</th></tr>");
    for (folder, count) in folders.iter().take(MAX_FOLDERS) {
        let folder = escape(&folder.display().to_string());
        let _ = writeln!(body, "<tr><td>{folder}</td><td class=\"number\">{count}</td></tr>");
    }
    body += "</table>\n";
    if folders.len() > MAX_FOLDERS {
        let _ = writeln!(body, "<p>and {} more folders</p>", folders.len() - MAX_FOLDERS);
    }
    body += "<h2>Files</h2>\n<ul class=\"files\">\n";
    let members = &plan.members[cluster];
    for &idx in members.iter().take(MAX_FILES) {
        let _ = writeln!(body, "<li>{}</li>", escape(&input.paths[idx].display().to_string()));
    }
    body += "</ul>\n";
    if members.len() > MAX_FILES {
        let _ = writeln!(body, "<p>and {} more files</p>", members.len() - MAX_FILES);
    }
    document(&format!("cluster {cluster}"), &body)
}

/// A figure as a linked image, with its SVG linked under it when it has one.
fn figure_html(figure: &WrittenFigure, alt: &str) -> String {
    let png = relative(&figure.png);
    let mut caption = format!("<a href=\"{png}\">PNG</a>");
    if let Some(svg) = &figure.svg {
        let _ = write!(caption, " · <a href=\"{}\">SVG</a>", relative(svg));
    }
    format!(
        "<figure><a href=\"{png}\"><img src=\"{png}\" width=\"{}\" height=\"{}\" alt=\"{}\"></a>\
         <figcaption>{caption}</figcaption></figure>\n",
        figure.width_px,
        figure.height_px,
        escape(alt)
    )
}

/// A file name relative to the report's folder, as a URL path.
fn relative(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    text.split('/').map(percent_encode).collect::<Vec<_>>().join("/")
}

fn percent_encode(part: &str) -> String {
    let mut encoded = String::new();
    for byte in part.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    encoded
}

const STYLE: &str = "\
body { font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 0 auto; max-width: 1240px; \
padding: 0 16px 40px; color: #222; line-height: 1.45; }
h1 { font-size: 1.8em; margin: 0.8em 0 0.3em; }
h2 { font-size: 1.35em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #ddd; }
nav a { margin-right: 1em; }
figure { margin: 0.5em 0 1.5em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; }
td.number { text-align: right; }
ul.files { font-family: 'DejaVu Sans Mono', monospace; font-size: 0.85em; }
";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

fn write(folder: &Path, name: &Path, html: &str) -> Result<(), ReportError> {
    let path = folder.join(name);
    std::fs::write(&path, html).map_err(|cause| ReportError::Write { path, cause })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_and_encoded() {
        assert_eq!(relative(Path::new("cluster-3.png")), "cluster-3.png");
        assert_eq!(relative(Path::new("a b/c#d.png")), "a%20b/c%23d.png");
    }

    #[test]
    fn pages_are_whole_documents() {
        let html = document("a <b>", "<p>x</p>\n");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>a &lt;b&gt;</title>"));
        assert!(html.trim_end().ends_with("</html>"));
    }
}
