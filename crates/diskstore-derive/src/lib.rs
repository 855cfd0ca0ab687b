//! `#[derive(Record)]` for structs with named fields: one table column per field.
//!
//! Attributes: `#[record(table = "Name")]` on the struct (default: the struct's name);
//! `#[record(default = <literal>)]` on a field (the value a migration gives existing
//! rows when it adds the column); `#[record(rename = "col")]` on a field.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Expr, Fields, LitStr, parse_macro_input};

/// Derives `diskstore::Record` for a struct with named fields.
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let mut table = name.to_string();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("record")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                table = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("expected `table = \"...\"`"))
            }
        })?;
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "Record can only be derived for structs",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            name,
            "Record needs a struct with named fields",
        ));
    };
    let mut columns = Vec::new();
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    for (i, f) in fields.named.iter().enumerate() {
        let ident = f.ident.as_ref().expect("named field");
        let ty = &f.ty;
        let mut column = ident.to_string();
        let mut default: Option<Expr> = None;
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("record")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("default") {
                    default = Some(meta.value()?.parse()?);
                    Ok(())
                } else if meta.path.is_ident("rename") {
                    column = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else {
                    Err(meta.error("expected `default = ...` or `rename = \"...\"`"))
                }
            })?;
        }
        let default = match default {
            Some(d) => quote!(::core::option::Option::Some(::diskstore::Value::from(#d))),
            None => quote!(::core::option::Option::None),
        };
        columns.push(quote! {
            ::diskstore::Column::new(
                #column,
                <#ty as ::diskstore::Field>::SQL_TYPE,
                <#ty as ::diskstore::Field>::NULLABLE,
                #default,
            )
            .with_kind(<#ty as ::diskstore::Field>::KIND)
        });
        writes.push(quote! { out.push(::diskstore::Field::to_cell(&self.#ident)?); });
        reads.push(quote! { #ident: row.field::<#ty>(#i, #column)?, });
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::diskstore::Record for #name #ty_generics #where_clause {
            const TABLE: ::core::option::Option<&'static str> = ::core::option::Option::Some(#table);

            fn columns() -> ::std::vec::Vec<::diskstore::Column> {
                ::std::vec![#(#columns),*]
            }

            fn write<'a>(
                &'a self,
                out: &mut ::std::vec::Vec<::diskstore::Cell<'a>>,
            ) -> ::diskstore::Result<()> {
                #(#writes)*
                ::core::result::Result::Ok(())
            }

            fn read(row: &::diskstore::Row<'_>) -> ::diskstore::Result<Self> {
                ::core::result::Result::Ok(Self { #(#reads)* })
            }
        }
    })
}
