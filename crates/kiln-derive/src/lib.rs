//! `#[derive(Module)]`: writes `kiln::Module::visit` from a struct's fields.
//!
//! Each field is reported under its name through `kiln::module::VisitField`, which is
//! implemented for `Parameter`, `Buffer`, `TrainMode`, every `Module`, and `Option`/`Vec` of
//! those. Fields of any other type need `#[module(skip)]`. Tuple structs name their fields
//! "0", "1", ... . The generated code refers to `::kiln`; crates inside the workspace that depend
//! on kiln-core directly say `#[module(crate = "kiln_core")]`.
//!
//! ```ignore
//! #[derive(Module)]
//! struct Net {
//!     fc1: nn::Linear,
//!     act: nn::ReLU,
//!     fc2: nn::Linear,
//!     #[module(skip)]
//!     name: String,
//! }
//! ```

#![warn(missing_docs)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr, parse_macro_input};

/// Derives `kiln::Module` for a struct.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// `#[module(skip)]` on a field, `#[module(crate = "...")]` on the struct.
struct Attrs {
    skip: bool,
    krate: Option<syn::Path>,
}

fn attrs(list: &[syn::Attribute]) -> syn::Result<Attrs> {
    let mut out = Attrs { skip: false, krate: None };
    for a in list.iter().filter(|a| a.path().is_ident("module")) {
        a.parse_nested_meta(|m| {
            if m.path.is_ident("skip") {
                out.skip = true;
                Ok(())
            } else if m.path.is_ident("crate") {
                let s: LitStr = m.value()?.parse()?;
                out.krate = Some(s.parse()?);
                Ok(())
            } else {
                Err(m.error("expected `skip` or `crate = \"...\"`"))
            }
        })?;
    }
    Ok(out)
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let krate: syn::Path = attrs(&input.attrs)?.krate.unwrap_or_else(|| syn::parse_quote!(::kiln));
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(&input.ident, "#[derive(Module)] supports structs only"));
    };
    let mut visits = Vec::new();
    let fields: Vec<&syn::Field> = match &data.fields {
        Fields::Named(f) => f.named.iter().collect(),
        Fields::Unnamed(f) => f.unnamed.iter().collect(),
        Fields::Unit => Vec::new(),
    };
    for (i, field) in fields.into_iter().enumerate() {
        if attrs(&field.attrs)?.skip {
            continue;
        }
        let (access, name) = match &field.ident {
            Some(id) => (quote!(#id), id.to_string()),
            None => {
                let idx = syn::Index::from(i);
                (quote!(#idx), i.to_string())
            }
        };
        visits.push(quote! {
            #krate::module::VisitField::visit_field(&self.#access, #name, f);
        });
    }
    let ident = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    // Typed access (`get_submodule_as`) needs `Any`, which only 'static types have: modules
    // without lifetime or type parameters (type parameters could be borrowed types).
    let as_any = if input.generics.params.is_empty() {
        quote! {
            fn as_any(&self) -> ::core::option::Option<&dyn ::core::any::Any> {
                ::core::option::Option::Some(self)
            }
        }
    } else {
        quote! {}
    };
    Ok(quote! {
        impl #impl_g #krate::module::Module for #ident #ty_g #where_g {
            fn visit<'__kiln_a>(&'__kiln_a self, f: &mut #krate::module::VisitFn<'_, '__kiln_a>) {
                #(#visits)*
            }
            fn as_dyn(&self) -> &dyn #krate::module::Module {
                self
            }
            #as_any
        }
    })
}
